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
}

export type BackendName = 'ggml' | 'reference' | 'mock';

export interface CreateOptions {
  /** Lowers the build-time memory cap (600 MB by default); it cannot raise it. */
  memoryLimitMb?: number;
  /** 'ggml' (default); 'reference' is the plain-Rust backend, 'mock' a stand-in for tests. */
  backend?: BackendName;
  /** Where `worker.js` is served from, if not beside `echo-engine.js`. */
  workerUrl?: string | URL;
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
  tokenizer?: 'auto' | 'world' | 'neox' | 'byte';
  /** The tokenizer's vocabulary: rwkv_vocab_v20230424.txt (world) or tokenizer.json (neox). */
  vocab?: Source;
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
  fileBytes: number;
  /** Weights plus one evaluation context. */
  memoryBytes: number;
  /** null when 'auto' found no vocabulary for this model: token-level calls still work. */
  tokenizer: 'world' | 'neox' | 'byte' | null;
  backend: BackendName;
}

export interface GenerateOptions {
  maxTokens?: number;
  /** 0 = greedy. */
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  penaltyDecay?: number;
  /** Token id → bias added to its logit. */
  logitBias?: Record<number, number>;
  bannedTokens?: number[];
  /** Generation stops before any of these strings (they are not emitted). */
  stop?: string | string[];
  stopTokens?: number[];
  seed?: number;
  /** Continue the conversation (earlier prompts, replies, evalTokens) instead of starting anew. */
  continue?: boolean;
  /**
   * Structured output: every token is drawn from those the grammar allows (sampling options still
   * apply among them). A complete grammar ends the generation with stopReason 'grammar';
   * 'length' then means the output is incomplete. A bad grammar rejects with `invalid_options`.
   */
  grammar?: Grammar;
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
  tokens: number;
  tokensPerS: number;
  /** Over the last 1024 requests. */
  latencyMs: { p50: number; p90: number; p99: number; max: number };
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
  /** Per backend name. */
  metrics(): Promise<Partial<Record<BackendName, BackendMetrics>>>;
  unloadModel(): Promise<void>;
  /** Stops the worker now; pending calls reject with `worker_crashed`. */
  terminate(): void;
}
