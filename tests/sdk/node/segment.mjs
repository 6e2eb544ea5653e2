// Drives Segment's own Node library (@segment/analytics-node, pinned in package.json) against
// a collector: node segment.mjs <base URL> <write key> <script> <fixed ISO time>. Prints one JSON line:
// {"errors": [...]} with every error the library reported.
import { Analytics } from '@segment/analytics-node'

const [host, writeKey, script, fixedTime] = process.argv.slice(2)
const analytics = new Analytics({
  writeKey,
  host,
  maxEventsInBatch: 20,
  flushInterval: 200,
  maxRetries: 2,
  httpRequestTimeout: 5000,
})
const errors = []
analytics.on('error', (e) => errors.push(String(e?.reason?.message ?? e?.reason ?? e?.message ?? e)))

if (script === 'journey') {
  // An anonymous visit, a sign-up (identify), then identified pages and tracks.
  analytics.page({ anonymousId: 'anon-1', name: 'Home', properties: { url: 'https://shop.example/', referrer: 'https://search.example/' } })
  analytics.identify({ userId: '42', anonymousId: 'anon-1', traits: { plan: 'pro', name: '张伟' } })
  analytics.page({ userId: '42', name: 'Product', properties: { url: 'https://shop.example/p/1' } })
  analytics.track({ userId: '42', event: '加入购物车', properties: { sku: 'A1', price: 12.5 }, context: { sessionId: 's-1' } })
  // A fixed messageId (not a UUID) and time, as a client resending the message would.
  analytics.track({ userId: '42', event: 'purchase', messageId: 'order-1001', timestamp: new Date(fixedTime), properties: { total: 12.5 } })
} else if (script === 'invalid') {
  // Every message refused by validation: a permanent 400 the library must not retry.
  analytics.track({ userId: '42', event: 'x'.repeat(300) })
}
await analytics.closeAndFlush({ timeout: 15000 })
console.log(JSON.stringify({ errors }))
