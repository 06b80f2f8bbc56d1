// Debian's chromium, driven by playwright-core, for the browser tests: why they are skipped when
// something is missing, and a headless browser on a fresh profile (browsers.mjs puts it beside
// Firefox).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { root } from '../support/models.mjs';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const missing = [
  [CHROMIUM, 'Debian chromium'],
  [join(root, 'pkg/echo_engine_bg.wasm'), 'the wasm package (run ./build-wasm.sh)'],
  [join(root, 'node_modules/playwright-core'), 'playwright-core (run npm ci)'],
].filter(([path]) => !existsSync(path));

/** false, or why the browser tests cannot run (a `skip` reason for node:test). */
export const CHROMIUM_MISSING = missing.length > 0 && `missing ${missing.map(([, what]) => what).join(', ')}`;

/** A headless chromium on a fresh profile; `close()` also deletes the profile. */
export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'echo-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS });
  return {
    newPage: () => context.newPage(),
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
