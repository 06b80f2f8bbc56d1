// Models kept in the Origin Private File System (folder `models/`), so a model downloaded or
// converted once loads again with no network. A file is written through a writable stream,
// which commits on close: an aborted write leaves no half file behind.

export const cacheAvailable = typeof navigator !== 'undefined' && !!navigator.storage?.getDirectory;

async function folder() {
  const root = await navigator.storage.getDirectory();
  return root.getDirectoryHandle('models', { create: true });
}

/** `[{ name, size }]`, by name. */
export async function listCached() {
  if (!cacheAvailable) return [];
  const list = [];
  for await (const handle of (await folder()).values()) {
    if (handle.kind === 'file') list.push({ name: handle.name, size: (await handle.getFile()).size });
  }
  return list.sort((a, b) => a.name.localeCompare(b.name));
}

/** The kept file, or null. */
export async function cachedFile(name) {
  if (!cacheAvailable) return null;
  try {
    return await (await (await folder()).getFileHandle(name)).getFile();
  } catch {
    return null;
  }
}

export async function removeCached(name) {
  await (await folder()).removeEntry(name).catch((e) => {
    if (e.name !== 'NotFoundError') throw e;
  });
}

/** A writer for `name`: `write(chunk)`, `commit()`, `discard()` (which also removes the entry). */
export async function cacheWriter(name) {
  const dir = await folder();
  const writable = await (await dir.getFileHandle(name, { create: true })).createWritable();
  return {
    write: (chunk) => writable.write(chunk),
    commit: () => writable.close(),
    discard: async () => {
      await writable.abort().catch(() => {});
      await removeCached(name);
    },
  };
}

export async function saveBlob(name, blob) {
  const writer = await cacheWriter(name);
  try {
    await writer.write(blob);
    await writer.commit();
  } catch (e) {
    await writer.discard();
    throw e;
  }
}

/** A file name for a model URL: its last path segment, kept to safe characters. */
export function cacheName(url) {
  const last = new URL(url, location.href).pathname.split('/').filter(Boolean).pop() ?? 'model.bin';
  return last.replace(/[^A-Za-z0-9._-]/g, '_');
}
