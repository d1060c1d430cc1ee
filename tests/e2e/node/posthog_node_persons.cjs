// Drives the real posthog-node client against two flagd nodes, for tests/e2e/test_persons.py.
// stdin: {"sdk": <path of the posthog-node package>, "writer": <node A url>, "reader": <node B url>, "token",
//         "secret", "user", "event", "flag"}
// stdout: {"before", "after", "local", "only_local", "errors"}: the flag for "user" asked of node B in remote
// mode before and after two "event"s were captured through node A; then by a local-evaluation client on node B
// (which must fall back to the server for a behavioural flag) and by the same client with onlyEvaluateLocally.
'use strict'

async function main() {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  const input = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  const { PostHog } = require(input.sdk)
  const errors = []
  const options = { flushAt: 1, featureFlagsPollingInterval: 600000, requestTimeout: 5000 }
  const writer = new PostHog(input.token, { ...options, host: input.writer })
  const remote = new PostHog(input.token, { ...options, host: input.reader })
  const local = new PostHog(input.token, { ...options, host: input.reader, personalApiKey: input.secret })
  for (const client of [writer, remote, local]) client.on('error', (err) => errors.push(String(err)))
  const out = { errors }
  out.before = (await remote.getFeatureFlag(input.flag, input.user)) ?? null
  for (let i = 0; i < 2; i++) {
    // captureImmediate resolves once the node answered the batch: applied, so visible on any node.
    await writer.captureImmediate({ distinctId: input.user, event: input.event })
  }
  out.after = (await remote.getFeatureFlag(input.flag, input.user)) ?? null
  await local.waitForLocalEvaluationReady(10000)
  out.local = (await local.getFeatureFlag(input.flag, input.user)) ?? null
  out.only_local = (await local.getFeatureFlag(input.flag, input.user, { onlyEvaluateLocally: true })) ?? null
  for (const client of [writer, remote, local]) await client.shutdown()
  process.stdout.write(JSON.stringify(out))
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err))
  process.exit(1)
})
