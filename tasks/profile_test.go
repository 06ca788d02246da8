package tasks_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/coze-eraser/coze-eraser/tasks"
)

// TestValidateProfile: the names a profile may have, and hostile ones.
func TestValidateProfile(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"default", "app-cn", "support_bot", "a", "A.1", strings.Repeat("x", tasks.MaxProfileLen)} {
		if err := tasks.ValidateProfile(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", ".a", "a:b", "a/b", "a b", "{a}", "a@b", "é", "a\n", strings.Repeat("x", tasks.MaxProfileLen+1)} {
		if err := tasks.ValidateProfile(bad); !errors.Is(err, tasks.ErrInvalidProfile) {
			t.Errorf("%q: %v, want ErrInvalidProfile", bad, err)
		}
	}
}
