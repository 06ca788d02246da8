package worker_test

import (
	"context"
	"strings"
	"testing"

	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/worker"
)

func TestCheckPersistence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		durable bool
		risk    string
	}{
		{"nothing", nil, false, "neither AOF nor RDB"},
		{"rdb only", []string{"--save", "900 1"}, true, "only RDB snapshots"},
		{"aof everysec", []string{"--appendonly", "yes", "--appendfsync", "everysec"}, true, ""},
		{"aof no fsync", []string{"--appendonly", "yes", "--appendfsync", "no"}, true, "not fsynced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t, redistest.WithArgs(tt.args...))
			p, err := worker.CheckPersistence(context.Background(), srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			if p.Durable() != tt.durable || (tt.risk == "") != (p.Risk() == "") || !strings.Contains(p.Risk(), tt.risk) {
				t.Errorf("%+v: durable %v, risk %q", p, p.Durable(), p.Risk())
			}
		})
	}
}
