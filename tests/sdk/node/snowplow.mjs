// Drives Snowplow's Node tracker (@snowplow/node-tracker, pinned in package.json) against a
// collector: node snowplow.mjs <base URL> <write key> <script> <fixed ISO time>. It posts the
// payload_data envelope to /com.snowplowanalytics.snowplow/tp2 (application/json; charset=utf-8),
// the key in an X-Write-Key header (Snowplow has no write key). Prints one JSON line:
// {"errors": [...]} with every failure the tracker reported.
import { newTracker, buildPageView, buildSelfDescribingEvent, buildStructEvent } from '@snowplow/node-tracker'

const [host, writeKey, script, fixedTime] = process.argv.slice(2)
const errors = []
const tracker = newTracker(
  { namespace: 'sp', appId: 'shop', encodeBase64: true },
  {
    endpoint: host,
    eventMethod: 'post',
    bufferSize: 10,
    customHeaders: { 'X-Write-Key': writeKey },
    onRequestFailure: (failure, response) => errors.push(`status ${response?.status ?? 'none'}: ${failure?.events?.length ?? 0} events`),
  },
)
tracker.setDomainUserId('anon-1')
tracker.setSessionId('s-1')
tracker.setUseragent('Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1')
// A fixed event id for the resent event: the tracker always draws a new one.
let fixedEid = null
tracker.addPlugin({ plugin: { beforeTrack: (pb) => { if (fixedEid) pb.add('eid', fixedEid) } } })

if (script === 'journey') {
  // An anonymous visit, a sign-up (Snowplow has no identify: the user id is set and a
  // self-describing event carries what the user told), then identified pages and events.
  tracker.track(buildPageView({ pageUrl: 'https://shop.example/', pageTitle: 'Home', referrer: 'https://search.example/' }))
  tracker.setUserId('42')
  tracker.track(buildSelfDescribingEvent({ event: { schema: 'iglu:com.acme/identify/jsonschema/1-0-0', data: { plan: 'pro', name: '张伟' } } }))
  tracker.track(buildPageView({ pageUrl: 'https://shop.example/p/1', pageTitle: 'Product' }))
  tracker.track(buildStructEvent({ category: 'shop', action: '加入购物车', label: 'A1', property: 'red', value: 12.5 }))
  // A fixed event id (not a UUID) and true timestamp, as a client resending the event would.
  fixedEid = 'order-1001'
  tracker.track(
    buildSelfDescribingEvent({ event: { schema: 'iglu:com.acme/purchase/jsonschema/1-0-0', data: { total: 12.5 } } }),
    undefined,
    { type: 'ttm', value: new Date(fixedTime).getTime() },
  )
  fixedEid = null
} else if (script === 'invalid') {
  // An event name (the action) over the collector's string limit: a permanent 400.
  tracker.track(buildStructEvent({ category: 'shop', action: 'x'.repeat(300) }))
}
await tracker.flush()
// The tracker calls onRequestFailure from a timer once the request is done.
await new Promise((resolve) => setTimeout(resolve, 100))
console.log(JSON.stringify({ errors }))
