// Package sweep is the retention policy as a library: it deletes a bot's
// conversations older than a cutoff, by creation or by last update, and
// optionally only those whose meta_data match, and runs such sweeps on a
// cron schedule across a fleet of workers.
//
// # A sweep
//
// [Sweeper.Run] walks each bot × connector of a [Spec] through the list
// endpoint (package discovery), as the profile, never as an end user's
// session, at the profile's rate budget. By creation time it lists in
// ascending creation order and stops at the first conversation that is not
// older than the cutoff; by update time it must read every page, since the
// list is ordered by creation. "Older than" is to the second: the cutoff is
// now − OlderThan, truncated to the second, and a conversation is older
// when its created_at (or updated_at) is before the cutoff; one made at the
// cutoff itself is kept. A conversation whose compared time is missing or
// 0 (which would read as 1970) is never matched: it is counted in
// [Result.Undated] and kept.
//
// The list endpoint pages by number, so a deletion between two pages would
// shift the later ones and hide conversations from the walk. Matching ids
// therefore go into the batch with enqueue.Hold as each page is read (no
// task, nothing deleted), and the batch is released (enqueue.Client.Release)
// once every walk is over. Memory does not grow with the number of
// conversations: a page at a time is held. Deletions that other batches
// make while a sweep lists can still hide a few conversations from it; the
// next run finds them.
//
// A walk that fails (an auth error, retries used up) does not stop the
// others. Once they are over, what every walk found is released all the
// same, since each id found matched the policy, and Run returns an error
// naming the bot, connector and page of each failure. A sweep stopped by
// its context (shutdown, Ctrl-C) releases nothing: the held ids stay in
// the batch, and a worker's janitor queues them once the batch has made no
// progress for its stall time (15 minutes by default); running the sweep
// again into the same batch releases them at once.
//
// A dry run lists and filters the same way, reports each match, and
// creates no batch and queues nothing.
//
// # Scheduled sweeps
//
// [Load] reads a sweeps file (YAML, checked as the profiles file is:
// every broken rule reported with its line and key), each sweep with a
// cron schedule. Any number of workers run a [Scheduler] on the same file
// and Redis: each tick is claimed in Redis (a compare-and-set on the
// sweep's record, with a lease the running worker renews), so one worker
// runs it. A tick missed while no worker was up runs once when one comes
// back, however many were missed. Each run is a batch named after the
// sweep and its tick ([BatchName]), so two workers that claimed the same
// tick would share one batch anyway.
//
// Runs of one sweep never overlap: no tick is claimed while the record
// holds a run whose lease is alive; the worker of that run, once it is
// over, runs the latest tick that came due meanwhile. A run stopped by a
// shutdown is recorded as abandoned; one whose worker died stays running
// until its lease runs out. Either is claimed again, and run into its
// batch, by a waiting scheduler at its next look at the record (every
// lease, at most a minute) or by one that starts, unless a later tick is
// claimed first. A tick more than [MaxClockSkew] ahead of Redis's clock is
// refused: a worker whose clock runs ahead would count the cutoff from a
// future tick and sweep conversations younger than the policy.
package sweep
