// Package report writes what the ledger knows for people and programs: the
// proof of erasure of a batch (CSV or JSONL, one row per id, streamed), the
// status of batches (a table, JSON, a progress bar), and the failure
// listing.
package report
