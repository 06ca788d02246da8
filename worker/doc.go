// Package worker turns conversation:delete tasks into Coze API calls and
// recorded outcomes.
//
// [Server] wires the [Handler] into an asynq server, with the retry policy,
// Prometheus metrics and /healthz and /readyz endpoints. What the handler
// does with each answer class:
//
//   - deleted, not found: done, recorded once per batch and id;
//   - rate limited: every call of the process pauses (Retry-After, else a
//     backoff), and the task is retried without using up a retry;
//   - auth: calls stop; one probe call is let through per interval until the
//     API accepts the token again; the task is never archived;
//   - transient, unknown: retried with full-jitter exponential backoff until
//     the retry budget is spent, then recorded as failed;
//   - permanent: recorded as failed and archived at once.
//
// A task can run more than once (asynq delivers at least once); the ledger's
// forward-only outcomes make the second run harmless.
package worker
