package redistest

import (
	"context"
	"strings"
)

// KeysHolding returns the keys whose name or value holds needle, reading
// each value by its type (strings, hashes, lists, sets, sorted sets), and
// the number of keys it read. Secret-leak tests use it.
func (s *Server) KeysHolding(ctx context.Context, needle string) (found []string, read int, err error) {
	c := s.Client()
	iter := c.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		var values []string
		switch typ := c.Type(ctx, key).Val(); typ {
		case "string":
			values = []string{c.Get(ctx, key).Val()}
		case "hash":
			for k, v := range c.HGetAll(ctx, key).Val() {
				values = append(values, k, v)
			}
		case "list":
			values = c.LRange(ctx, key, 0, -1).Val()
		case "set":
			values = c.SMembers(ctx, key).Val()
		case "zset":
			values = c.ZRange(ctx, key, 0, -1).Val()
		case "none":
			continue // gone since the scan saw it
		default:
			values = []string{"unreadable type " + typ}
		}
		read++
		if strings.Contains(key, needle) || strings.Contains(strings.Join(values, "\x00"), needle) {
			found = append(found, key)
		}
	}
	return found, read, iter.Err()
}
