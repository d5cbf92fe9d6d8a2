// Run after webpack: fails the build when dist/ is not a loadable plugin folder, so CI catches
// a broken bundle config without a Grafana to load it into.
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const dist = path.join(root, 'dist');
const { version } = require('../package.json');
const problems = [];
const read = (file) => (fs.existsSync(path.join(dist, file)) ? fs.readFileSync(path.join(dist, file), 'utf8') : null);

for (const file of ['module.js', 'plugin.json', 'README.md', 'img/logo.svg']) {
  if (read(file) === null) {
    problems.push(`dist/${file} is missing`);
  }
}

const meta = JSON.parse(read('plugin.json') ?? '{}');
if (meta.id !== 'postfixinsights-messages-datasource') {
  problems.push(`dist/plugin.json id is ${meta.id}`);
}
if (meta.info?.version !== version || /%\w+%/.test(JSON.stringify(meta))) {
  problems.push('dist/plugin.json placeholders were not filled in');
}

// AMD module whose dependencies are exactly what Grafana provides
const bundle = read('module.js') ?? '';
const deps = /^(?:\/\*[\s\S]*?\*\/\s*)?define\((\[[^\]]*\])/.exec(bundle);
const provided = new Set(['react', 'react-dom', 'rxjs', '@grafana/data', '@grafana/runtime', '@grafana/ui']);
if (!deps) {
  problems.push('dist/module.js is not an AMD module');
} else {
  const unknown = JSON.parse(deps[1]).filter((d) => !provided.has(d));
  if (unknown.length) {
    problems.push(`dist/module.js depends on modules Grafana does not provide: ${unknown.join(', ')}`);
  }
}
if (/react\.production\.min|__SECRET_INTERNALS/.test(bundle)) {
  problems.push('dist/module.js bundles its own React');
}
if (deps) {
  const exported = loadAmd(bundle);
  if (!exported || typeof exported.plugin !== 'object') {
    problems.push('dist/module.js does not export `plugin` when loaded as an AMD module');
  }
}

/**
 * Loads the bundle as Grafana's SystemJS would, with stand-ins for the host's modules (any
 * export is a chainable class), and returns what the module exports.
 */
function loadAmd(code) {
  class Stub {
    constructor() {
      return new Proxy(this, { get: (t, key, self) => (key in t ? t[key] : () => self) });
    }
  }
  const stubModule = () => new Proxy({ __esModule: true }, { get: (t, key) => (key in t ? t[key] : Stub) });
  let exported;
  const define = (names, factory) => {
    exported = factory(...names.map(stubModule));
  };
  define.amd = true;
  try {
    require('vm').runInNewContext(code, { define, self: {}, window: {}, console });
  } catch (err) {
    problems.push(`dist/module.js failed to load: ${err.message}`);
  }
  return exported;
}

const provisioning = fs.readFileSync(path.join(root, 'provisioning/datasources/postfix-insights.yaml'), 'utf8');
if (!/type:\s*postfixinsights-messages-datasource/.test(provisioning)) {
  problems.push('provisioning example does not name the plugin id');
}

if (problems.length) {
  console.error(`check-build: ${problems.length} problem(s)\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`check-build: dist/ is a loadable plugin (version ${version}, ${bundle.length} bytes of module.js)`);
