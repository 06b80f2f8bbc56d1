// Where the engine's memory stores live between sessions: IndexedDB in browsers, a file in Node
// (`memoryPath`), or nowhere. The wasm engine holds the stores; this writes them through after
// every change and reads them back after a model is loaded. A failure (quota, IndexedDB missing,
// a corrupt file) is a typed `storage_failed` error once; from then on the stores work in memory
// only (`persistent: false`) and nothing persisted is overwritten.
import { echoError } from './sources.js';

/**
 * @param {{ memoryPath?: string, persistMemories?: boolean, memoryDatabase?: string }} options
 * @param {boolean} isNode
 */
export function openPersistence({ memoryPath, persistMemories, memoryDatabase = 'echo-engine' }, isNode) {
  if (memoryPath) return new Persistence(new FileBackend(memoryPath));
  if (isNode || persistMemories === false) return new Persistence(null);
  if (typeof indexedDB === 'undefined') {
    return new Persistence(null, echoError('storage_failed', 'IndexedDB is not available here: memories are kept in memory only'));
  }
  return new Persistence(new IndexedDbBackend(memoryDatabase));
}

class Persistence {
  #backend;
  #loaded = false;
  /** @param {FileBackend | IndexedDbBackend | null} backend */
  constructor(backend, error = null) {
    this.#backend = backend;
    this.error = error;
  }

  get persistent() {
    return !!this.#backend;
  }

  /** After a model load: the first time, reads the persisted stores; later, rewrites them if the
   *  new model embedded them again. Never fails the load: a failure turns persistence off. */
  async afterLoad(engine, reembedded) {
    if (!this.#backend) return;
    try {
      if (!this.#loaded) {
        this.#loaded = true;
        const stores = await this.#backend.load(engine);
        for (const s of stores) if (s.reembedded) await this.#backend.saveStore(engine, s.store);
      } else if (reembedded) {
        for (const store of engine.memoryStores()) await this.#backend.saveStore(engine, store);
      }
    } catch (e) {
      this.#fail(e, 'reading the saved memories failed');
    }
  }

  /** Writes through one change; throws `storage_failed` (the change stays in memory) on failure. */
  async saved(engine, store, id, what) {
    if (!this.#backend) return;
    try {
      await this.#backend.save(engine, store, id);
    } catch (e) {
      throw this.#fail(e, `${what}, but saving it failed`);
    }
  }

  async storeSaved(engine, store, what) {
    if (!this.#backend) return;
    try {
      await this.#backend.saveStore(engine, store);
    } catch (e) {
      throw this.#fail(e, `${what}, but saving failed`);
    }
  }

  #fail(e, what) {
    this.#backend = null;
    const reason = e?.name === 'QuotaExceededError' ? 'the storage quota is exceeded' : (e?.message ?? String(e));
    this.error = echoError('storage_failed', `${what} (${reason}); memories are now kept in memory only (persistent: false)`);
    return this.error;
  }
}

/** Node: every store in one file, rewritten whole (temp file, fsync, rename) after each change. */
class FileBackend {
  #path;
  constructor(path) {
    this.#path = path;
  }

  async load(engine) {
    const fs = await import('node:fs/promises');
    let bytes;
    try {
      bytes = await fs.readFile(this.#path);
    } catch (e) {
      if (e.code === 'ENOENT') return [];
      throw e;
    }
    return engine.importMemories(bytes);
  }

  async save(engine) {
    const fs = await import('node:fs/promises');
    const temp = `${this.#path}.tmp`;
    const file = await fs.open(temp, 'w');
    try {
      await file.writeFile(engine.exportMemories());
      await file.sync();
    } finally {
      await file.close();
    }
    await fs.rename(temp, this.#path);
  }

  saveStore(engine) {
    return this.save(engine);
  }
}

/** A request's result as a promise. */
function done(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** A transaction's end as a promise (an abort, e.g. for the quota, rejects). */
function committed(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('the IndexedDB transaction was aborted'));
  });
}

/** Memory ids: IndexedDB orders numbers before strings, so this leaves out the 'header' key. */
const IDS = () => IDBKeyRange.bound(0, Number.MAX_SAFE_INTEGER);

/**
 * Browsers: one database; one object store per memory store, holding its export's header under
 * 'header' and each memory's record under its id, so a change writes only what changed.
 */
class IndexedDbBackend {
  #name;
  /** @type {IDBDatabase | undefined} */
  #db;
  constructor(name) {
    this.#name = name;
  }

  async #open(version) {
    const request = indexedDB.open(this.#name, version);
    request.onupgradeneeded = () => {
      for (const store of this.#creating) if (!request.result.objectStoreNames.contains(store)) request.result.createObjectStore(store);
    };
    const db = await done(request);
    // Another engine (another tab) adding a store needs this one to let go.
    db.onversionchange = () => {
      db.close();
      if (this.#db === db) this.#db = undefined;
    };
    return db;
  }

  #creating = [];

  /** The database, with an object store for `store` if given. */
  async #database(store) {
    this.#db ??= await this.#open();
    if (store && !this.#db.objectStoreNames.contains(store)) {
      const version = this.#db.version + 1;
      this.#db.close();
      this.#creating = [store];
      this.#db = await this.#open(version);
    }
    return this.#db;
  }

  async load(engine) {
    const db = await this.#database();
    const imported = [];
    for (const store of Array.from(db.objectStoreNames)) {
      const tx = db.transaction(store, 'readonly');
      const os = tx.objectStore(store);
      const [header, records] = await Promise.all([done(os.get('header')), done(os.getAll(IDS()))]);
      if (!header) continue;
      imported.push(...engine.importMemories(exportOf(header, records), store));
    }
    return imported;
  }

  async save(engine, store, id) {
    const db = await this.#database(store);
    const tx = db.transaction(store, 'readwrite');
    const os = tx.objectStore(store);
    os.put(engine.memoryHeader(store), 'header');
    const record = engine.memoryRecord(store, id);
    if (record) os.put(record, id);
    else os.delete(id);
    await committed(tx);
  }

  async saveStore(engine, store) {
    const db = await this.#database(store);
    const tx = db.transaction(store, 'readwrite');
    const os = tx.objectStore(store);
    os.clear();
    os.put(engine.memoryHeader(store), 'header');
    const { total } = engine.memories(store, 0, 0);
    for (const { id } of engine.memories(store, 0, total).items) os.put(engine.memoryRecord(store, id), id);
    await committed(tx);
  }
}

/** A store's export from its header and records: header, the count (u64), the records. */
function exportOf(header, records) {
  const size = header.byteLength + 8 + records.reduce((n, r) => n + r.byteLength, 0);
  const out = new Uint8Array(size);
  out.set(header, 0);
  new DataView(out.buffer).setBigUint64(header.byteLength, BigInt(records.length), true);
  let pos = header.byteLength + 8;
  for (const r of records) {
    out.set(r, pos);
    pos += r.byteLength;
  }
  return out;
}
