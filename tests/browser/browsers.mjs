// The browsers every browser test (tests/browser/) and scripts/browser-cli.mjs run in, behind one
// small page API: newPage, goto, reload, evaluate, waitForFunction, on('pageerror' | 'console'),
// close; input as a user gives it (the element scrolled into view, then a real click or real
// keys): click, fill, press, type, setInputFiles; and setViewportSize, screenshot (full page).
// Chromium is Debian's, driven by playwright-core (chromium.mjs); Firefox is Debian's firefox-esr,
// driven by geckodriver over WebDriver BiDi (Playwright can only drive its own patched Firefox
// builds, which cannot be downloaded here); WebKit is Debian's WebKitGTK (its MiniBrowser, the
// engine family Safari uses), driven by WebKitWebDriver over classic WebDriver (it has no BiDi) on
// an Xvfb display (WebKitGTK has no headless mode).
import { after, before, describe } from 'node:test';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { root } from '../support/models.mjs';
import { CHROMIUM_MISSING, launchChromium } from './chromium.mjs';

const FIREFOX = '/usr/bin/firefox-esr';

/** geckodriver on PATH, else where `cargo install` (scripts/setup.sh) puts it; or undefined. */
function findGeckodriver() {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), join(process.env.CARGO_HOME ?? join(homedir(), '.cargo'), 'bin')];
  for (const dir of dirs) {
    const path = join(dir, 'geckodriver');
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch { /* not here */ }
  }
  return undefined;
}
const GECKODRIVER = findGeckodriver();

const firefoxMissing = [
  [existsSync(FIREFOX), 'Debian firefox-esr'],
  [GECKODRIVER !== undefined, 'geckodriver (scripts/setup.sh installs it)'],
  [existsSync(join(root, 'pkg/echo_engine_bg.wasm')), 'the wasm package (run ./build-wasm.sh)'],
  [existsSync(join(root, 'node_modules/ws')), 'ws (run npm ci)'],
].filter(([present]) => !present).map(([, what]) => what);

/** false, or why the Firefox tests cannot run (a `skip` reason for node:test). */
export const FIREFOX_MISSING = firefoxMissing.length > 0 && `missing ${firefoxMissing.join(', ')}`;

const WEBKIT_DRIVER = '/usr/bin/WebKitWebDriver';
const MINIBROWSER = '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
const XVFB = '/usr/bin/Xvfb';
const webkitMissing = [
  [existsSync(WEBKIT_DRIVER), 'Debian webkit2gtk-driver'],
  [existsSync(MINIBROWSER), 'WebKitGTK\'s MiniBrowser (Debian libwebkit2gtk-4.1-0)'],
  [existsSync(XVFB), 'Xvfb (Debian xvfb)'],
  [existsSync(join(root, 'pkg/echo_engine_bg.wasm')), 'the wasm package (run ./build-wasm.sh)'],
].filter(([present]) => !present).map(([, what]) => what);

/** false, or why the WebKit tests cannot run (a `skip` reason for node:test). */
export const WEBKIT_MISSING = webkitMissing.length > 0 && `missing ${webkitMissing.join(', ')}`;

/**
 * Each browser: `name` for test titles, `missing` (false or the skip reason), `launch()` giving
 * `{ newPage(), close() }`, and what it `lacks` that the engine or the demo would use (the tests
 * check that each is detected and explained): WebKitGTK 2.50 has no SharedArrayBuffer even on a
 * cross-origin isolated page (so no threads), and no Origin Private File System.
 */
export const BROWSERS = [
  { name: 'Chromium', missing: CHROMIUM_MISSING, launch: launchChromiumPages, lacks: [] },
  { name: 'Firefox', missing: FIREFOX_MISSING, launch: launchFirefox, lacks: [] },
  { name: 'WebKit', missing: WEBKIT_MISSING, launch: launchWebKit, lacks: ['SharedArrayBuffer', 'OPFS'] },
];

/** The test page (pages/e2e.html, which loads the package and its scenarios) from `server`, ready. */
export async function openTestPage(browser, server) {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.log('page error:', e.message));
  await page.goto(`${server.url}/tests/browser/pages/e2e.html`);
  await page.waitForFunction(() => document.getElementById('status').textContent === 'ready');
  return page;
}

/**
 * Declares one describe per browser, named after it, whose tests share one browser and one test
 * page (openTestPage on `server()`, which is read once they run), opened before them and closed
 * after. Skipped test by test (not the whole suite) so that the skips are counted and listed: each
 * test passes `{ skip }`, which is the browser's reason, else `skip` given here (another missing
 * thing), else false. `body({ name, id, skip, page })` declares the tests; `page()` is the page.
 */
export function describeInBrowsers({ server, skip: otherwise = false }, body) {
  for (const { name, missing, launch } of BROWSERS) {
    const skip = missing || otherwise;
    describe(name, () => {
      let browser;
      let page;
      before(async () => {
        if (skip) return;
        browser = await launch();
        page = await openTestPage(browser, server());
      });
      after(async () => {
        await page?.close();
        await browser?.close();
      });
      body({ name, id: name.toLowerCase(), skip, page: () => page });
    });
  }
}

// Chromium: Playwright's page, narrowed to the shared API so that a test using more of Playwright
// fails in Chromium too, not only in Firefox.
async function launchChromiumPages() {
  const browser = await launchChromium();
  return {
    async newPage() {
      const page = await browser.newPage();
      return {
        goto: (url) => page.goto(url).then(() => undefined),
        reload: () => page.reload().then(() => undefined),
        evaluate: (fn, arg) => page.evaluate(fn, arg),
        waitForFunction: (fn, arg, options) => page.waitForFunction(fn, arg, options).then(() => undefined),
        on(event, listener) {
          if (event === 'pageerror') page.on('pageerror', (e) => listener({ message: e.message }));
          else if (event === 'console') page.on('console', (m) => listener({ type: m.type(), text: m.text() }));
          else throw new Error(`unknown page event ${event}`);
        },
        click: (selector) => page.click(selector),
        fill: (selector, text) => page.fill(selector, text),
        press: (selector, key) => page.press(selector, key),
        type: (selector, text) => page.type(selector, text),
        setInputFiles: (selector, path) => page.setInputFiles(selector, path),
        setViewportSize: (size) => page.setViewportSize(size),
        screenshot: (path) => page.screenshot({ path, fullPage: true }).then(() => undefined),
        close: () => page.close(),
      };
    },
    close: () => browser.close(),
  };
}

// Values cross from the page as JSON; these tags carry what JSON would silently change
// (undefined, NaN, ±Infinity, -0), and anything else that is not plain data is refused in the
// page, so a scenario cannot get different data in Firefox than Playwright gives in Chromium.
const TAG = '\u0000echo';
const ENCODE = `function encode(value, seen = new Set()) {
  if (value === undefined) return { ${JSON.stringify(TAG)}: 'undefined' };
  if (typeof value === 'number') {
    if (Number.isNaN(value)) return { ${JSON.stringify(TAG)}: 'NaN' };
    if (value === Infinity) return { ${JSON.stringify(TAG)}: 'Infinity' };
    if (value === -Infinity) return { ${JSON.stringify(TAG)}: '-Infinity' };
    if (Object.is(value, -0)) return { ${JSON.stringify(TAG)}: '-0' };
    return value;
  }
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value !== 'object') throw new TypeError('evaluate returns plain data only, not a ' + typeof value);
  if (seen.has(value)) throw new TypeError('evaluate returns plain data only, not a cyclic object');
  seen.add(value);
  let out;
  if (Array.isArray(value)) out = value.map((v) => encode(v, seen));
  else if (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null)
    out = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, encode(v, seen)]));
  else throw new TypeError('evaluate returns plain data only, not a ' + Object.prototype.toString.call(value));
  seen.delete(value);
  return out;
}`;
const SPECIALS = { undefined, NaN, Infinity, '-Infinity': -Infinity, '-0': -0 };
function decode(value) {
  if (Array.isArray(value)) return value.map(decode);
  if (value !== null && typeof value === 'object') {
    if (TAG in value) return SPECIALS[value[TAG]];
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = decode(v);
    return out;
  }
  return value;
}

/** WebDriver's codes for the keys the tests press by name. */
const KEYS = { Enter: '\uE007', Escape: '\uE00C', Shift: '\uE008' };

/** The keyDown/keyUp actions pressing `key` ('Shift+Enter': Shift held while Enter goes down and up). */
function keyPress(key) {
  const held = key.split('+').map((k) => KEYS[k] ?? k);
  return [...held.map((value) => ({ type: 'keyDown', value })), ...held.reverse().map((value) => ({ type: 'keyUp', value }))];
}

/** The keyDown/keyUp actions typing `text`. */
const keyText = (text) => [...text].flatMap((value) => [{ type: 'keyDown', value }, { type: 'keyUp', value }]);

/**
 * waitForFunction over a driver's `evaluate`: polls like Playwright's default (raf there; 100 ms
 * here), with Playwright's 30 s timeout.
 */
function pollWith(evaluate) {
  return async (fn, arg, { timeout = 30000 } = {}) => {
    const end = Date.now() + timeout;
    let last;
    for (;;) {
      try {
        if (await evaluate(`async (a) => Boolean(await (${fn})(a))`, arg)) return;
      } catch (e) {
        last = e; // e.g. the document was replaced mid-call: try again
      }
      if (Date.now() > end) throw new Error(`waitForFunction: ${fn} still false after ${timeout} ms${last ? ` (${last.message})` : ''}`);
      await new Promise((ok) => setTimeout(ok, 100));
    }
  };
}

/**
 * As Playwright waits before input (a page function of the selector): the element there, shown,
 * enabled, in view, still for a frame (the page may be scrolling it) and first under the pointer
 * at its centre.
 */
const ACTIONABLE = async (s) => {
  const e = document.querySelector(s);
  if (!e || e.disabled || e.getClientRects().length === 0) return false;
  e.scrollIntoView({ block: 'center' });
  const before = e.getBoundingClientRect();
  await new Promise(requestAnimationFrame);
  const box = e.getBoundingClientRect();
  const hit = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
  return box.x === before.x && box.y === before.y && (e === hit || e.contains(hit));
};

/** Starts geckodriver on a free port; resolves with its URL and the process. */
function startGeckodriver() {
  return new Promise((resolve, reject) => {
    // Port 0 for both: parallel test files and other runs on the machine each get their own.
    const child = spawn(GECKODRIVER, ['--host', '127.0.0.1', '--port', '0', '--websocket-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const onData = (d) => {
      out += d;
      const m = /Listening on (\S+:\d+)/.exec(out);
      if (m) {
        child.stdout.off('data', onData);
        resolve({ url: `http://${m[1]}`, child });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d) => { out += d; });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`geckodriver exited (${code}) before listening: ${out}`)));
  });
}

async function http(method, url, body) {
  const res = await fetch(url, { method, headers: { 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
  const json = await res.json();
  if (!res.ok) throw new Error(`WebDriver ${method} ${url}: ${json.value?.error}: ${json.value?.message}`);
  return json.value;
}

/** A headless Firefox (fresh profile, made and deleted by geckodriver) over WebDriver BiDi. */
async function launchFirefox() {
  const { default: WebSocket } = await import('ws');
  const driver = await startGeckodriver();
  let session;
  let socket;
  try {
    session = await http('POST', `${driver.url}/session`, {
      capabilities: {
        alwaysMatch: {
          browserName: 'firefox',
          webSocketUrl: true,
          'moz:firefoxOptions': {
            binary: FIREFOX,
            args: ['-headless'],
            // No network at test time: keep Firefox from trying its update and telemetry services.
            prefs: { 'app.update.disabledForTesting': true, 'datareporting.policy.dataSubmissionEnabled': false, 'toolkit.telemetry.enabled': false },
          },
        },
      },
    });
    socket = new WebSocket(session.capabilities.webSocketUrl, { perMessageDeflate: false, maxPayload: 0 });
    await new Promise((ok, fail) => { socket.once('open', ok); socket.once('error', fail); });
  } catch (e) {
    driver.child.kill();
    throw e;
  }

  let nextId = 1;
  const pending = new Map();
  const listeners = new Set();
  const gone = (why) => {
    for (const { fail } of pending.values()) fail(new Error(`Firefox: ${why}`));
    pending.clear();
  };
  socket.on('message', (data) => {
    const msg = JSON.parse(data);
    if (msg.id !== undefined) {
      const p = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.type === 'error') p?.fail(new Error(`BiDi ${p.method}: ${msg.error}: ${msg.message}`));
      else p?.ok(msg.result);
    } else if (msg.type === 'event') {
      for (const l of listeners) l(msg.method, msg.params);
    }
  });
  socket.on('close', () => gone('the WebDriver BiDi connection closed'));
  const send = (method, params) => new Promise((ok, fail) => {
    const id = nextId++;
    pending.set(id, { ok, fail, method });
    socket.send(JSON.stringify({ id, method, params }));
  });
  await send('session.subscribe', { events: ['log.entryAdded'] });

  return {
    async newPage() {
      const { context } = await send('browsingContext.create', { type: 'tab' });
      const pageListeners = [];
      const onEvent = (method, params) => {
        // Entries from this tab; a worker's have no browsing context of their own here.
        if (method !== 'log.entryAdded' || (params.source?.context && params.source.context !== context)) return;
        for (const [event, listener] of pageListeners) {
          if (event === 'pageerror' && params.type === 'javascript') listener({ message: params.text });
          if (event === 'console' && params.type === 'console') listener({ type: params.method, text: params.text });
        }
      };
      listeners.add(onEvent);
      const evaluate = async (fn, arg) => {
        const r = await send('script.callFunction', {
          functionDeclaration: `async function (json) {
            ${ENCODE}
            return JSON.stringify(encode(await (${fn})(json === '' ? undefined : JSON.parse(json))));
          }`,
          arguments: [{ type: 'string', value: arg === undefined ? '' : JSON.stringify(arg) }],
          target: { context },
          awaitPromise: true,
          resultOwnership: 'none',
        });
        if (r.type === 'exception') {
          throw new Error(`in Firefox: ${r.exceptionDetails.text}`);
        }
        return decode(JSON.parse(r.result.value));
      };
      const waitForFunction = pollWith(evaluate);
      /** The first element matching `selector`, as a BiDi reference. */
      const locate = async (selector) => {
        const { nodes } = await send('browsingContext.locateNodes', { context, locator: { type: 'css', value: selector }, maxNodeCount: 1 });
        if (nodes.length === 0) throw new Error(`no element matches ${selector}`);
        return { sharedId: nodes[0].sharedId };
      };
      /** Calls `fn` in the page on the BiDi values `args`, for its effect. */
      const call = async (fn, ...args) => {
        const r = await send('script.callFunction', { functionDeclaration: fn, arguments: args, target: { context }, awaitPromise: true, resultOwnership: 'none' });
        if (r.type === 'exception') throw new Error(`in Firefox: ${r.exceptionDetails.text}`);
      };
      const keys = (actions) => send('input.performActions', { context, actions: [{ type: 'key', id: 'keyboard', actions }] });
      const visible = async (selector) => {
        await waitForFunction(ACTIONABLE, selector);
        return locate(selector);
      };
      return {
        goto: (url) => send('browsingContext.navigate', { context, url, wait: 'complete' }).then(() => undefined),
        reload: () => send('browsingContext.reload', { context, wait: 'complete' }).then(() => undefined),
        evaluate,
        waitForFunction,
        on(event, listener) {
          if (event !== 'pageerror' && event !== 'console') throw new Error(`unknown page event ${event}`);
          pageListeners.push([event, listener]);
        },
        async click(selector) {
          const element = await visible(selector);
          await send('input.performActions', { context, actions: [{ type: 'pointer', id: 'mouse', parameters: { pointerType: 'mouse' }, actions: [
            { type: 'pointerMove', x: 0, y: 0, origin: { type: 'element', element } },
            { type: 'pointerDown', button: 0 },
            { type: 'pointerUp', button: 0 },
          ] }] });
        },
        // As Playwright's fill: the value replaced at once, with one input event.
        async fill(selector, text) {
          await call('(e, text) => { e.focus(); e.value = text; e.dispatchEvent(new Event("input", { bubbles: true })); }', await visible(selector), { type: 'string', value: text });
        },
        async press(selector, key) {
          await call('(e) => e.focus()', await visible(selector));
          await keys(keyPress(key));
        },
        async type(selector, text) {
          await call('(e) => e.focus()', await visible(selector));
          await keys(keyText(text));
        },
        async setInputFiles(selector, path) {
          await send('input.setFiles', { context, element: await locate(selector), files: [path] });
        },
        setViewportSize: ({ width, height }) => send('browsingContext.setViewport', { context, viewport: { width, height } }).then(() => undefined),
        async screenshot(path) {
          const { data } = await send('browsingContext.captureScreenshot', { context, origin: 'document' });
          writeFileSync(path, Buffer.from(data, 'base64'));
        },
        async close() {
          listeners.delete(onEvent);
          await send('browsingContext.close', { context });
        },
      };
    },
    async close() {
      try {
        await http('DELETE', `${driver.url}/session/${session.sessionId}`);
      } finally {
        socket.close();
        driver.child.kill();
      }
    },
  };
}

/** Ends `child` (SIGTERM, SIGKILL after 5 s); resolves once it has exited. */
function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill();
  });
}

/** A free TCP port on 127.0.0.1 (WebKitWebDriver cannot be given port 0). */
function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

/** Xvfb on a display number it picks itself (-displayfd); resolves with `:N` and the process. */
function startXvfb() {
  return new Promise((resolve, reject) => {
    const child = spawn(XVFB, ['-displayfd', '3', '-screen', '0', '1280x1024x24', '-nolisten', 'tcp'], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
    let fd = '';
    let err = '';
    child.stdio[3].on('data', (d) => {
      fd += d;
      if (fd.includes('\n')) resolve({ display: `:${fd.trim()}`, child });
    });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`Xvfb exited (${code}) before giving its display: ${err}`)));
  });
}

/**
 * WebKitWebDriver on `display`, ready once it answers `/status`. It serves one session at a time,
 * so each page has its own. The port is picked free first: if another process takes it meanwhile,
 * the driver exits and another port is tried.
 */
async function startWebKitDriver(env) {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const child = spawn(WEBKIT_DRIVER, [`--port=${port}`], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    let err = '';
    let exited = false;
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', (e) => { exited = true; err += e.message; });
    child.on('exit', () => { exited = true; });
    for (const end = Date.now() + 10000; !exited && Date.now() < end;) {
      try {
        await http('GET', `${url}/status`);
        return { url, child };
      } catch {
        await new Promise((ok) => setTimeout(ok, 50));
      }
    }
    child.kill();
    if (attempt === 3) throw new Error(`WebKitWebDriver did not start (port ${port}): ${err}`);
  }
}

// Classic WebDriver has no events: the page's uncaught errors and console calls are kept in the
// page from each navigation on (what comes before the navigation ends is not seen) and collected
// with every command and every 100 ms. Playwright's names: 'warning' for console.warn.
const EVENTS = '__echoDriverEvents';
const COLLECT = `if (!window.${EVENTS}) {
  const events = window.${EVENTS} = [];
  addEventListener('error', (e) => events.push(['pageerror', { message: String(e.message) }]));
  addEventListener('unhandledrejection', (e) => events.push(['pageerror', { message: String(e.reason?.message ?? e.reason) }]));
  for (const type of ['log', 'info', 'warn', 'error', 'debug']) {
    const original = console[type];
    console[type] = function (...args) {
      events.push(['console', { type: type === 'warn' ? 'warning' : type, text: args.map(String).join(' ') }]);
      return original.apply(this, args);
    };
  }
}`;
const TAKE_EVENTS = `(window.${EVENTS} ?? []).splice(0)`;
const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';

/**
 * WebKitGTK's MiniBrowser on an Xvfb display, one browser process per page, over classic WebDriver;
 * a fresh profile (XDG folders, deleted on close) whose GTK style sheet lets MiniBrowser's toolbar
 * shrink, which otherwise keeps the window at least 447 px wide (the tests set 375).
 */
async function launchWebKit() {
  const profile = mkdtempSync(join(tmpdir(), 'echo-webkit-'));
  mkdirSync(join(profile, 'config/gtk-3.0'), { recursive: true });
  writeFileSync(join(profile, 'config/gtk-3.0/gtk.css'), 'toolbar, toolbar *, entry, button { min-width: 0; padding: 0; margin: 0; }\n');
  let xvfb;
  try {
    xvfb = await startXvfb();
  } catch (e) {
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
  const env = { DISPLAY: xvfb.display, XDG_CONFIG_HOME: join(profile, 'config'), XDG_DATA_HOME: join(profile, 'data'), XDG_CACHE_HOME: join(profile, 'cache') };
  const pages = new Set();
  return {
    async newPage() {
      const driver = await startWebKitDriver(env);
      let at;
      try {
        const session = await http('POST', `${driver.url}/session`, {
          capabilities: { alwaysMatch: { 'webkitgtk:browserOptions': { binary: MINIBROWSER, args: ['--automation'] } } },
        });
        at = `${driver.url}/session/${session.sessionId}`;
        // A scenario may run for minutes: no script timeout (the tests' own timeouts apply).
        await http('POST', `${at}/timeouts`, { script: null });
      } catch (e) {
        driver.child.kill();
        throw e;
      }
      // One command at a time, in order (a WebDriver session's commands are sequential).
      let queue = Promise.resolve();
      let busy = 0;
      const command = (method, path, body) => {
        busy++;
        const result = queue.then(() => http(method, `${at}${path}`, body));
        queue = result.then(() => {}, () => {}).finally(() => busy--);
        return result;
      };
      const script = (body, ...args) => command('POST', '/execute/sync', { script: body, args });

      const listeners = [];
      const deliver = (events) => {
        for (const [event, data] of events ?? []) for (const [e, listener] of listeners) if (e === event) listener(data);
      };
      let closed = false;
      const collect = async () => {
        if (closed) return;
        if (busy === 0 && listeners.length > 0) {
          try {
            deliver(await script(`return ${TAKE_EVENTS};`));
          } catch { /* mid-navigation: next time */ }
        }
        setTimeout(collect, 100);
      };
      collect();

      const evaluate = async (fn, arg) => {
        const r = await command('POST', '/execute/async', {
          script: `const done = arguments[arguments.length - 1];
            ${ENCODE}
            const json = arguments[0];
            (async () => JSON.stringify(encode(await (${fn})(json === '' ? undefined : JSON.parse(json)))))()
              .then((value) => done({ value, events: ${TAKE_EVENTS} }), (e) => done({ error: String(e), events: ${TAKE_EVENTS} }));`,
          args: [arg === undefined ? '' : JSON.stringify(arg)],
        });
        deliver(r.events);
        if ('error' in r) throw new Error(`in WebKit: ${r.error}`);
        return decode(JSON.parse(r.value));
      };
      const waitForFunction = pollWith(evaluate);
      /** The first element matching `selector`, as a WebDriver element reference. */
      const locate = (selector) => command('POST', '/element', { using: 'css selector', value: selector });
      const visible = async (selector) => {
        await waitForFunction(ACTIONABLE, selector);
        return locate(selector);
      };
      const keys = async (actions) => {
        await command('POST', '/actions', { actions: [{ type: 'key', id: 'keyboard', actions }] });
        await command('DELETE', '/actions');
      };
      // Classic WebDriver sizes the window: grow it by what MiniBrowser's own bars take, then wait
      // until the page has the size and has painted at it (a shot taken sooner is partly black).
      // A resize can land after the command returns (seen on a loaded machine): the page's size
      // is read once it holds still, and the window corrected again until it is right.
      const setViewportSize = async ({ width, height }) => {
        const size = () => script('return [innerWidth, innerHeight];');
        const settled = async () => {
          for (let last = await size(); ; ) {
            await new Promise((ok) => setTimeout(ok, 50));
            const now = await size();
            if (now[0] === last[0] && now[1] === last[1]) return now;
            last = now;
          }
        };
        const end = Date.now() + 15000;
        for (let rect = { width, height }; ; ) {
          await command('POST', '/window/rect', rect);
          const [w, h] = await settled();
          if (w === width && h === height) break;
          if (Date.now() > end) throw new Error(`setViewportSize: the page is ${w}×${h}, not ${width}×${height}`);
          rect = { width: rect.width + width - w, height: rect.height + height - h };
        }
        await waitForFunction(async ([w, h]) => {
          if (innerWidth !== w || innerHeight !== h) return false;
          await new Promise(requestAnimationFrame);
          await new Promise(requestAnimationFrame);
          return true;
        }, [width, height], { timeout: 15000 });
      };
      const page = {
        async goto(url) {
          await command('POST', '/url', { url });
          await script(COLLECT);
        },
        async reload() {
          await command('POST', '/refresh', {});
          await script(COLLECT);
        },
        evaluate,
        waitForFunction,
        on(event, listener) {
          if (event !== 'pageerror' && event !== 'console') throw new Error(`unknown page event ${event}`);
          listeners.push([event, listener]);
        },
        async click(selector) {
          await command('POST', `/element/${(await visible(selector))[ELEMENT]}/click`, {});
        },
        // As Playwright's fill: the value replaced at once, with one input event.
        async fill(selector, text) {
          await script('const e = arguments[0]; e.focus(); e.value = arguments[1]; e.dispatchEvent(new Event("input", { bubbles: true }));',
            await visible(selector), text);
        },
        async press(selector, key) {
          await script('arguments[0].focus();', await visible(selector));
          await keys(keyPress(key));
        },
        async type(selector, text) {
          await script('arguments[0].focus();', await visible(selector));
          await keys(keyText(text));
        },
        async setInputFiles(selector, path) {
          await command('POST', `/element/${(await locate(selector))[ELEMENT]}/value`, { text: path });
        },
        setViewportSize,
        // Full page: the viewport made as tall as the document for the shot.
        async screenshot(path) {
          const [width, height, full] = await script('return [innerWidth, innerHeight, document.documentElement.scrollHeight];');
          await setViewportSize({ width, height: Math.max(height, full) });
          const data = await command('GET', '/screenshot');
          await setViewportSize({ width, height });
          writeFileSync(path, Buffer.from(data, 'base64'));
        },
        async close() {
          if (closed) return;
          closed = true;
          pages.delete(page);
          try {
            await command('DELETE', '');
          } finally {
            await stop(driver.child);
          }
        },
      };
      pages.add(page);
      return page;
    },
    async close() {
      try {
        await Promise.allSettled([...pages].map((p) => p.close()));
      } finally {
        await stop(xvfb.child);
        // WebKit's web and network processes may still be writing its caches for a moment after
        // the driver has gone: a folder that fills again as it is emptied is retried, not thrown.
        rmSync(profile, { recursive: true, force: true, maxRetries: 20 });
      }
    },
  };
}
