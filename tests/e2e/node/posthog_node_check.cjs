// Drives the real posthog-node client against a flagd server, for tests/e2e/test_posthog_node.py.
// stdin: {"sdk": <path of the posthog-node package>, "host", "token", "secret",
//         "users": [{"distinct_id", "person_properties", "groups", "group_properties"}], "payload_flags": [key]}
// stdout: {"users": [{"local": {key: value}, "remote": {key: value}}], "payloads": {key: value}}
// "local" holds only what the SDK decided from the definitions (onlyEvaluateLocally); "remote" asks /flags.
'use strict'

async function main() {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  const input = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  const { PostHog } = require(input.sdk)
  const errors = []
  const options = { host: input.host, flushAt: 1, featureFlagsPollingInterval: 600000, requestTimeout: 5000 }
  const local = new PostHog(input.token, { ...options, personalApiKey: input.secret })
  const remote = new PostHog(input.token, options)
  for (const client of [local, remote]) client.on('error', (err) => errors.push(String(err)))
  await local.waitForLocalEvaluationReady(10000)
  const users = []
  for (const user of input.users) {
    const ask = {
      personProperties: user.person_properties,
      groups: user.groups,
      groupProperties: user.group_properties,
    }
    users.push({
      local: await local.getAllFlags(user.distinct_id, { ...ask, onlyEvaluateLocally: true }),
      remote: await remote.getAllFlags(user.distinct_id, ask),
    })
  }
  const payloads = {}
  for (const key of input.payload_flags) payloads[key] = (await local.getRemoteConfigPayload(key)) ?? null
  await local.shutdown()
  await remote.shutdown()
  process.stdout.write(JSON.stringify({ users, payloads, errors }))
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err))
  process.exit(1)
})
