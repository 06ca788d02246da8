// Package cpuprofile writes a CPU profile of the whole process to the file
// COZE_ERASER_CPUPROFILE names. The bench sets it for each process it
// measures; it is an environment variable, not a flag, because it is for
// developers, not operators.
package cpuprofile

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// Variable is the environment variable that names the profile's file.
const Variable = "COZE_ERASER_CPUPROFILE"

// Start profiles the process into the file $COZE_ERASER_CPUPROFILE names,
// when set, until the returned function is called. A file that cannot be
// written is reported on stderr as program's, and the process runs without
// a profile.
func Start(program string) (stop func()) {
	path := os.Getenv(Variable)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %s: %v\n", program, Variable, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil { // the profile's last bytes may be lost
			fmt.Fprintf(os.Stderr, "%s: %s: %v\n", program, Variable, err)
		}
	}
}
