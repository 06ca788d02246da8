// Package tasks is the contract between producers and workers: the task type,
// its payload, the asynq task id derived from a conversation id, and the rule
// that decides whether a string is a conversation id at all.
//
// Anything that writes conversation:delete tasks into Redis (the enqueue
// package, the CLI, or a producer in another language) must follow it:
//
//   - the task type is [TypeDelete];
//   - the payload is the JSON object [Payload] (no secrets, ever);
//   - the asynq task id is [TaskID] of the conversation id, so that the same id
//     enqueued twice while the first task is still pending, scheduled or
//     retrying is refused by asynq as a duplicate;
//   - the asynq MaxRetry is [AsynqMaxRetry] of the wanted retry budget: the
//     budget plus [RetryReserve] (see [RetryBudget] for why).
package tasks
