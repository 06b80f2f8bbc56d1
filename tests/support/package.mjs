// The package as a newcomer gets it: `npm pack` of this repository, installed by name into an
// empty project (offline: the package has no run-time dependencies).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { root } from './models.mjs';

/** A temporary project with echo-engine installed from its tarball; `remove()` deletes it. */
export function installPacked() {
  const dir = mkdtempSync(join(tmpdir(), 'echo-app-'));
  // --ignore-scripts: the test run has built pkg/ already (prepack would build it again).
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: root, encoding: 'utf8' }));
  const tarball = join(dir, packed[0].filename);
  const app = join(dir, 'app');
  execFileSync('mkdir', [app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], { cwd: app, stdio: 'ignore' });
  return { app, files: packed[0].files.map((f) => f.path), remove: () => rmSync(dir, { recursive: true, force: true }) };
}
