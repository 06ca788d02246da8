package benchrun

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/coze"
)

// bareTaskType is the bare side's task type; its payload is the id alone.
const bareTaskType = "bare:delete"

// BareEnqueue is what a user would write without coze-eraser: read the
// file, and call asynq's Client.Enqueue for each id from goroutines.
func BareEnqueue(ctx context.Context, redisURL, path string, goroutines int) error {
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	client := asynq.NewClientFromRedisClient(rdb)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close() //nolint:errcheck // read only: nothing to lose
	ids := make(chan string, 1024)
	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				if _, err := client.EnqueueContext(ctx, asynq.NewTask(bareTaskType, []byte(id))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if id := strings.TrimSpace(sc.Text()); id != "" {
			ids <- id
		}
	}
	close(ids)
	wg.Wait()
	close(errs)
	return <-errs
}

// BareWorker is the bare side's worker: an asynq server whose handler only
// sends the DELETE, with the same HTTP transport as coze-eraser's client,
// and fails the task on anything but a 200.
func BareWorker(ctx context.Context, redisURL, baseURL, token string, concurrency int) error {
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	hc := &http.Client{Transport: coze.NewTransport(), Timeout: 10 * time.Second}
	mux := asynq.NewServeMux()
	mux.HandleFunc(bareTaskType, func(ctx context.Context, t *asynq.Task) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, baseURL+"/v1/conversations/"+string(t.Payload()), nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	})
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: concurrency, LogLevel: asynq.ErrorLevel})
	if err := srv.Start(mux); err != nil {
		return err
	}
	<-ctx.Done()
	srv.Shutdown()
	return nil
}
