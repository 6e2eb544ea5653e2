// Drives PostHog's own Node library (posthog-node, pinned in package.json) against a
// collector: node posthog.mjs <base URL> <project key> <script> <fixed ISO time>. Prints one
// JSON line: {"errors": [...]} with every error the library reported.
import { PostHog } from 'posthog-node'

const [host, apiKey, script, fixedTime] = process.argv.slice(2)
const client = new PostHog(apiKey, {
  host,
  flushAt: 20,
  flushInterval: 200,
  fetchRetryCount: 2,
  fetchRetryDelay: 200,
  requestTimeout: 5000,
  // No feature-flag calls: only capture is under test.
  sendFeatureFlagEvent: false,
})
const errors = []
client.on('error', (e) => errors.push(String(e?.message ?? e)))

if (script === 'journey') {
  // An anonymous page view, a sign-up (identify), then identified captures.
  client.capture({
    distinctId: 'anon-1',
    event: '$pageview',
    properties: {
      $current_url: 'https://shop.example/',
      $referrer: 'https://search.example/',
      $session_id: 's-1',
      $raw_user_agent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1',
    },
  })
  client.identify({ distinctId: '42', properties: { $set: { plan: 'pro', name: '张伟' }, $anon_distinct_id: 'anon-1' } })
  client.capture({ distinctId: '42', event: '加入购物车', properties: { sku: 'A1', price: 12.5, $session_id: 's-1' } })
  // A fixed uuid and time, as a client resending the event would.
  client.capture({
    distinctId: '42',
    event: 'purchase',
    uuid: '0190b6e4-0000-7000-8000-00000000c0de',
    timestamp: new Date(fixedTime),
    properties: { total: 12.5 },
  })
} else if (script === 'invalid') {
  // Refused by validation: an event name over the limit.
  client.capture({ distinctId: '42', event: 'x'.repeat(300) })
}
await client.shutdown(15000)
console.log(JSON.stringify({ errors }))
