// Types of the `echo-engine` package's API (`js/echo-engine.js`).

export type ErrorCode =
  | 'invalid_model'
  | 'unsupported_version'
  | 'model_too_large'
  | 'aborted'
  | 'load_failed'
  | 'no_model'
  | 'invalid_options'
  | 'out_of_memory'
  | 'compute_failed'
  | 'busy'
  | 'storage_failed'
  | 'worker_crashed';

/** Every failure: `code` says what went wrong, `message` what to do. */
export class EchoError extends Error {
  readonly name: 'EchoError';
  readonly code: ErrorCode;
  /** `model_too_large`: bytes the model needs, and the limit it was checked against. */
  readonly neededBytes?: number;
  readonly limitBytes?: number;
  /** `load_failed` over HTTP: the response status. */
  readonly status?: number;
  /** `storage_failed` from `remember`: the memory's id (it is kept, in memory only). */
  readonly memoryId?: number;
  /** `worker_crashed` with `autoRestart`: a new worker is starting; later calls wait for it. */
  readonly restarting?: boolean;
}

export type BackendName = 'ggml' | 'reference' | 'mock';

export interface CreateOptions {
  /** Lowers the build-time memory cap (600 MB by default); it cannot raise it. */
  memoryLimitMb?: number;
  /**
   * 'ggml' (default); 'reference' is the plain-Rust backend, 'mock' a stand-in for tests; 'auto'
   * uses the first of ggml, reference and mock that starts and passes a health check.
   */
  backend?: BackendName | 'auto';
  /**
   * Threads ggml computes on (1 to 64). Default: half the cores, 1 to 4, in Node and on
   * cross-origin isolated pages that have SharedArrayBuffer (the threaded build, `pkg-threads/`);
   * 1 elsewhere.
   */
  threads?: number;
  /** Where `worker.js` is served from, if not beside `echo-engine.js`. */
  workerUrl?: string | URL;
  /** Node: the file the memory stores are kept in (rewritten atomically after each change). */
  memoryPath?: string;
  /** Browsers: keep the memory stores in IndexedDB (default true). */
  persistMemories?: boolean;
  /** Browsers: the IndexedDB database's name (default 'echo-engine'). */
  memoryDatabase?: string;
  /**
   * After the worker dies (calls in flight reject with `worker_crashed`), start a new one, reload
   * the last model if it came from a URL, Blob or path, and call `onRestart`. At most 3 restarts.
   */
  autoRestart?: boolean;
  onRestart?: (event: { restarts: number; reloaded: boolean; reason: string; error?: EchoError }) => void;
}

/**
 * A model or vocabulary file. ArrayBuffer and Uint8Array sources are transferred to the worker
 * (detached afterwards); a string is a URL, or in Node a file path.
 */
export type Source = string | URL | Blob | ArrayBuffer | Uint8Array | ReadableStream<Uint8Array>;

export interface LoadProgress {
  /** 'download' while bytes arrive, then 'prepare' (validating, starting the backend), then 'ready'. */
  phase: 'download' | 'prepare' | 'ready';
  /** Bytes of the file taken so far. */
  loaded: number;
  /** The file's size, when the source knows it. */
  total?: number;
}

export interface LoadOptions {
  /** 'auto' (default) picks by vocabulary size: 65536 → world, ~50277 → neox, 256 → byte. */
  tokenizer?: 'auto' | 'world' | 'neox' | '20B' | 'pile' | 'byte';
  /** The tokenizer's vocabulary: rwkv_vocab_v20230424.txt (world) or tokenizer.json (neox). */
  vocab?: Source;
  /**
   * Quantize a float head to this type as it loads (as `echo-engine quantize --head` does to a
   * file): in wasm the FP16 head is about a third of a decode step. Logits move slightly (Q8_0: under
   * 1% of the largest logit on the test models). A float type is `invalid_options`.
   */
  head?: 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1' | 'Q8_0';
  onProgress?: (progress: LoadProgress) => void;
  signal?: AbortSignal;
}

export type DataType = 'FP32' | 'FP16' | 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1' | 'Q8_0';

export interface ConvertOptions {
  /** The model file's type (default FP16). */
  type?: DataType;
  /** `phase` is 'convert'; `loaded`/`total` count the checkpoint's tensor bytes. */
  onProgress?: (progress: { phase: 'convert'; loaded: number; total: number }) => void;
  signal?: AbortSignal;
}

export interface Converted {
  /** The rwkv.cpp model file. */
  blob: Blob;
  arch: 'v4' | 'v5.1' | 'v5.2' | 'v6' | 'v7';
  nVocab: number;
  nEmbed: number;
  nLayer: number;
  dataType: DataType;
  tensors: number;
  /** Tensors quantized (0 for FP32 and FP16). */
  quantized: number;
}

export interface ModelInfo {
  arch: 'v4' | 'v5.1' | 'v5.2' | 'v6' | 'v7';
  nVocab: number;
  nEmbed: number;
  nLayer: number;
  dataType: DataType;
  /** The head's type: FP16 in rwkv.cpp's files, else what `head` or `quantize --head` made it. */
  headType: DataType;
  fileBytes: number;
  /** Weights plus one evaluation context. */
  memoryBytes: number;
  /** null when 'auto' found no vocabulary for this model: token-level calls still work. */
  tokenizer: 'world' | 'neox' | 'byte' | null;
  backend: BackendName;
  /** Threads ggml computes on. */
  threads: number;
  /** Why fewer threads than asked (no cross-origin isolation, no SharedArrayBuffer, the threaded build failed), else null. */
  threadsWhy: string | null;
}

/** How tokens are drawn (ChatRWKV's sampler): the same options in `generate` and `process`. */
export interface SamplingOptions {
  /** 0 = greedy. */
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  penaltyDecay?: number;
  seed?: number;
}

export interface GenerateOptions extends SamplingOptions {
  maxTokens?: number;
  /** Token id → bias added to its logit. */
  logitBias?: Record<number, number>;
  bannedTokens?: number[];
  /** Generation stops before any of these strings (they are not emitted). */
  stop?: string | string[];
  stopTokens?: number[];
  /** Continue the conversation (earlier prompts, replies, evalTokens) instead of starting anew. */
  continue?: boolean;
  /**
   * Structured output: every token is drawn from those the grammar allows (sampling options still
   * apply among them). A complete grammar ends the generation with stopReason 'grammar';
   * 'length' then means the output is incomplete. A bad grammar rejects with `invalid_options`.
   */
  grammar?: Grammar;
  /** Report each generated token's natural log probability under the model (`Completion.logprobs`). */
  logprobs?: boolean;
  signal?: AbortSignal;
}

/**
 * A JSON Schema (an object, or its JSON text), a regular expression (Rust `regex` syntax, the
 * whole output), a Lark grammar (llguidance's dialect, start rule `start`) or a GBNF grammar
 * (llama.cpp's format, start rule `root`).
 */
export type Grammar = { jsonSchema: object | string } | { regex: string } | { lark: string } | { gbnf: string };

export interface GenerationStats {
  promptTokens: number;
  /** Prompt tokens whose state came from the prefix cache. */
  cachedTokens: number;
  evaluatedPromptTokens: number;
  generatedTokens: number;
  promptMs: number;
  decodeMs: number;
  promptTokensPerS: number;
  decodeTokensPerS: number;
  /** The median decode step (sample a token, evaluate it), in ms: the steady speed, pauses aside. */
  decodeMsMedian: number;
  /** An identical earlier request (same seed and options) was answered again. */
  fromResponseCache: boolean;
}

export interface Completion {
  text: string;
  /** Every sampled token, a stop token included. */
  tokens: number[];
  /** 'grammar': the grammar is complete; 'length': maxTokens came first (with a grammar: incomplete). */
  stopReason: 'length' | 'stop' | 'abort' | 'grammar';
  stats: GenerationStats;
  /** With `logprobs: true`: each token's natural log probability (softmax of the model's logits). */
  logprobs?: number[];
}

export interface GenerationChunk {
  /** Complete UTF-8 text: a character split across tokens arrives whole. */
  text: string;
}

/**
 * `for await (const chunk of generation)`; `result` resolves when it ends. Aborting (the
 * signal, `abort()`, or leaving the loop early) ends it with stopReason 'abort'.
 */
export interface Generation extends AsyncIterable<GenerationChunk> {
  readonly result: Promise<Completion>;
  abort(): void;
}

export interface MemoryInfo {
  /** Bytes allocated in the wasm instance now. */
  usedBytes: number;
  /** Of which the memory stores (texts, int8 vectors, indexes). */
  memoriesBytes: number;
  /** Of which the prefix-state and response caches (bounded: a sixteenth of the limit, at most 32 MB). */
  cacheBytes: number;
  /** The most allocated since the last load began. */
  peakBytes: number;
  limitBytes: number;
  /** Size of the wasm memory (what the instance holds; it never shrinks). */
  wasmMemoryBytes: number;
}

export interface BackendMetrics {
  requests: number;
  /** Requests that failed (an abort is not a failure: see `aborted`). */
  errors: number;
  /** Generations the caller aborted. */
  aborted: number;
  /** Requests that resumed from the prefix cache or were answered by the response cache. */
  cacheHits: number;
  tokens: number;
  tokensPerS: number;
  /** Over the last 1024 requests. */
  latencyMs: { p50: number; p90: number; p95: number; p99: number; max: number };
}

export type Metrics = Partial<Record<BackendName, BackendMetrics>> & {
  /** Per membrane of `process` (and its integration), once one has run. */
  membranes?: Partial<Record<'grammar' | 'memory' | 'reasoning' | 'integration', BackendMetrics>>;
};

export interface Health {
  /** A model is loaded and passed its backend's check. */
  ok: boolean;
  backend: BackendName | null;
  /** With 'auto': why the backends tried before this one failed ("ggml: …"). */
  fallbacks: string[];
  model: string | null;
  memory: { usedBytes: number; limitBytes: number; headroomBytes: number };
  lastError: { op: string; code: ErrorCode; message: string; at: number } | null;
  persistentMemories: boolean;
  /** Workers restarted by `autoRestart`. */
  restarts: number;
  /** Threads ggml computes on, and why fewer than asked (else null), as in `ModelInfo`. */
  threads: number;
  threadsWhy: string | null;
}

export interface Memory {
  id: number;
  text: string;
  metadata: unknown;
}

export interface MemoryHit extends Memory {
  /** 0.5 · cosine + 0.5 · lexical: what hits are ranked by. */
  score: number;
  /** Cosine similarity of the model's embeddings. */
  cosine: number;
  /** BM25 over the query's best BM25, in [0, 1]. */
  lexical: number;
}

export interface StoreOption {
  /** The memory store (default 'default'): 1–64 letters, digits, '-', '_' or '.'. */
  store?: string;
}

export interface Memories {
  total: number;
  items: Memory[];
  /** False when the stores could not be saved or read (see `storageError`): memory only. */
  persistent: boolean;
  storageError?: { code: 'storage_failed'; message: string };
}

export interface ProcessContext {
  userInput: string;
  sessionId?: string;
  conversationHistory?: { role: 'user' | 'assistant' | 'system'; text: string }[];
  /** Passed through to the response. */
  memoryState?: unknown;
  /** Told to the model in the integration prompt. */
  processingGoals?: string | string[];
  temporalContext?: unknown;
  metadata?: unknown;
}

export interface ProcessOptions extends SamplingOptions {
  memory?: {
    store?: string;
    /** Memories recalled for the input (default 3). */
    k?: number;
    /** Which inputs are stored: 'statements' (default: statements and exclamations), 'always', 'never'. */
    remember?: 'statements' | 'always' | 'never';
  };
  /** `branches` chains (default 1; 0 turns reasoning off; at most 8) of up to `maxTokens` (default 64). */
  reasoning?: { branches?: number; maxTokens?: number };
  /** The answer is decoded under this grammar. */
  responseFormat?: Grammar;
  /** Tokens of the answer at most (default 128). */
  maxTokens?: number;
  /** The answer stops before these (default: a blank line; none with a responseFormat). */
  stop?: string[];
  signal?: AbortSignal;
}

/** Every membrane's result: what it found, how sure (in [0, 1]), and how long it took. */
export interface MembraneResult {
  output: string;
  confidence: number;
  ms: number;
}

export interface MemoryMembrane extends MembraneResult {
  recalled: MemoryHit[];
  /** Where the input was stored, or null (see `storePolicy`). */
  stored: { store: string; id: number } | null;
  storePolicy: 'statements' | 'always' | 'never';
  persistent: boolean;
  storageError?: { code: 'storage_failed'; message: string };
}

export interface ReasoningMembrane extends MembraneResult {
  /** The chosen chain's steps, each with the geometric mean of its tokens' probabilities. */
  steps: { text: string; confidence: number }[];
  branches: { text: string; confidence: number; agreement: number }[];
  chosen: number;
  /** Mean Jaccard similarity of the branches' words (1 with one branch). */
  agreement: number;
}

export interface GrammarMembrane extends MembraneResult {
  analysis: Record<string, unknown>;
  /** The answer was decoded under `responseFormat`. */
  constrained: boolean;
  format: string | null;
}

export interface ProcessResponse {
  sessionId: string | null;
  integratedResponse: string;
  /** The geometric mean of the answer's token probabilities. */
  confidence: number;
  stopReason: Completion['stopReason'];
  backend: BackendName;
  membranes: { grammar: GrammarMembrane; memory: MemoryMembrane; reasoning: ReasoningMembrane };
  integration: { prompt: string; confidence: number; ms: number; tokens: number };
  memoryState: unknown;
  temporalContext: unknown;
  metadata: unknown;
  stats: { ms: number; promptTokens: number; cachedTokens: number; generatedTokens: number };
}

export type ProcessEvent =
  | { type: 'membrane'; name: 'grammar' | 'memory' | 'reasoning'; result: MembraneResult }
  | { type: 'text'; text: string };

export interface ProcessRun extends AsyncIterable<ProcessEvent> {
  readonly result: Promise<ProcessResponse>;
  abort(): void;
}

export class EchoEngine {
  private constructor();
  static create(options?: CreateOptions): Promise<EchoEngine>;
  loadModel(source: Source, options?: LoadOptions): Promise<ModelInfo>;
  /** A PyTorch checkpoint (.pth, .safetensors) converted to an rwkv.cpp file. */
  convert(source: Source, options?: ConvertOptions): Promise<Converted>;
  /** The loaded model's info (as `loadModel` resolved). */
  info(): Promise<ModelInfo>;
  /** Starts a new conversation unless `options.continue`. */
  generate(prompt: string, options?: GenerateOptions): Generation;
  complete(prompt: string, options?: GenerateOptions): Promise<Completion>;
  /** Starts a new, empty conversation (the prefix cache stays). */
  reset(): Promise<void>;
  tokenize(text: string): Promise<number[]>;
  detokenize(ids: ArrayLike<number>): Promise<string>;
  /** Appends the tokens to the conversation; the logits for the next token. */
  evalTokens(ids: ArrayLike<number>): Promise<Float32Array>;
  /** The conversation (tokens, state, logits) as bytes. */
  saveState(): Promise<Uint8Array>;
  /** Restores a `saveState` of the same model; the bytes are transferred (detached). */
  loadState(bytes: Uint8Array | ArrayBuffer): Promise<void>;
  memory(): Promise<MemoryInfo>;
  /** Per backend name, and per membrane. */
  metrics(): Promise<Metrics>;
  health(): Promise<Health>;
  /** L2-normalised embeddings by the loaded model (mean pooling over the text's tokens). */
  embed(text: string): Promise<Float32Array>;
  embed(texts: string[]): Promise<Float32Array[]>;
  /** Resolves to the new memory's id. */
  remember(text: string, options?: StoreOption & { metadata?: unknown }): Promise<number>;
  recall(query: string, options?: StoreOption & { k?: number }): Promise<MemoryHit[]>;
  forget(id: number, options?: StoreOption): Promise<boolean>;
  memories(options?: StoreOption & { offset?: number; limit?: number }): Promise<Memories>;
  /** One store's memories as bytes, or (no store) every store's. */
  exportMemories(options?: StoreOption): Promise<Uint8Array>;
  /** Another model's memories are embedded again; the bytes are transferred (detached). */
  importMemories(bytes: Uint8Array | ArrayBuffer, options?: StoreOption): Promise<{ store: string; memories: number; reembedded: boolean }[]>;
  /** The cognitive loop: memory, reasoning and grammar membranes, then one integrated answer. */
  process(context: ProcessContext, options?: ProcessOptions): Promise<ProcessResponse>;
  processStream(context: ProcessContext, options?: ProcessOptions): ProcessRun;
  unloadModel(): Promise<void>;
  /** Requests sent and not yet answered (0 when idle). */
  readonly pendingRequests: number;
  /** Stops the worker now; pending calls reject with `worker_crashed`. */
  terminate(): void;
}
