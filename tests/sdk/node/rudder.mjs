// Drives RudderStack's Node library (@rudderstack/rudder-sdk-node, pinned in package.json)
// against a collector: node rudder.mjs <base URL> <write key> <script> <fixed ISO time>.
// It sends gzipped JSON labelled application/x-www-form-urlencoded, with HTTP Basic auth.
// Prints one JSON line: {"errors": [...]}.
import Analytics from '@rudderstack/rudder-sdk-node'

const [host, writeKey, script, fixedTime] = process.argv.slice(2)
const errors = []
const client = new Analytics(writeKey, {
  dataPlaneUrl: host,
  flushAt: 20,
  flushInterval: 200,
  retryCount: 1,
  logLevel: 'error',
  errorHandler: (e) => errors.push(String(e?.message ?? e)),
})

if (script === 'journey') {
  client.page({ anonymousId: 'anon-1', name: 'Home', properties: { url: 'https://shop.example/', referrer: 'https://search.example/' } })
  client.identify({ userId: '42', anonymousId: 'anon-1', traits: { plan: 'pro', name: '张伟' } })
  client.page({ userId: '42', name: 'Product', properties: { url: 'https://shop.example/p/1' } })
  client.track({ userId: '42', event: '加入购物车', properties: { sku: 'A1', price: 12.5 }, context: { sessionId: 's-1' } })
  client.track({ userId: '42', event: 'purchase', messageId: 'order-1001', timestamp: new Date(fixedTime), originalTimestamp: new Date(fixedTime), properties: { total: 12.5 } })
} else if (script === 'invalid') {
  client.track({ userId: '42', event: 'x'.repeat(300) })
}
await new Promise((resolve) => client.flush((err) => { if (err) errors.push(String(err?.message ?? err)); resolve() }))
console.log(JSON.stringify({ errors }))
