// Re-records src/__fixtures__/ from a running `postfix-insights serve` (e.g. on the demo store):
//   PI_URL=http://127.0.0.1:8080 PI_TOKEN=secret node scripts/record-fixtures.js
// annotations.json is kept when the store has no incident to show (the demo data has none).
const fs = require('fs');
const path = require('path');

const base = (process.env.PI_URL || 'http://127.0.0.1:8080').replace(/\/$/, '') + '/api/v1';
const token = process.env.PI_TOKEN || '';
const dir = path.join(__dirname, '..', 'src', '__fixtures__');

async function get(pathAndQuery, { auth = true, expect = 200 } = {}) {
  const headers = auth && token ? { Authorization: `Bearer ${token}` } : {};
  const res = await fetch(base + pathAndQuery, { headers });
  const body = await res.json();
  if (res.status !== expect) {
    throw new Error(`${pathAndQuery}: HTTP ${res.status}, expected ${expect}: ${JSON.stringify(body).slice(0, 300)}`);
  }
  return body;
}

function save(name, body) {
  fs.writeFileSync(path.join(dir, name), JSON.stringify(body, null, 2) + '\n');
  console.log(`wrote ${name}`);
}

async function main() {
  // a message with retries makes the richest trace
  const deferred = await get('/messages?status=deferred&limit=50');
  const pick = deferred.items.find((r) => r.attempts > 1 && r.queue_id) ?? deferred.items.find((r) => r.queue_id);
  if (!pick) {
    throw new Error('no deferred message with a queue ID in the store');
  }
  save('messages.frames.json', await get('/messages?format=frames&limit=3'));
  save('trace.frames.json', await get(`/messages/${encodeURIComponent(pick.queue_id)}?format=frames&host=${pick.host}`));
  save('stats-volume.frames.json', await get('/stats/volume?format=frames&from=24h&interval=1h'));
  save('stats-domains.frames.json', await get('/stats/domains?format=frames&limit=3'));
  save('values-domain.json', await get('/values/domain?prefix=ex&limit=5'));
  const annotations = await get('/annotations?from=7d');
  if (annotations.items.length) {
    save('annotations.json', annotations);
  } else {
    console.log('kept annotations.json: the store has no bounce or defer spike');
  }
  save('health.json', await get('/health'));
  save('error-400.json', await get('/messages?from=yesterday', { expect: 400 }));
  save('error-404.json', await get('/messages/NOSUCHQUEUEID', { expect: 404 }));
  if (token) {
    save('error-401.json', await get('/health', { auth: false, expect: 401 }));
  } else {
    console.log('kept error-401.json: no PI_TOKEN, so no 401 to record');
  }
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
