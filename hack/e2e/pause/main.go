// Command pause is the sandbox ("pause") image of the end-to-end cluster:
// nothing can be pulled on the test machines, so the runtime's sandbox image
// is built from this. It holds the pod's namespaces open by sleeping, reaps
// any child that is reparented to it (it is PID 1 of the pod when the pod
// shares its process namespace), and exits at once on SIGTERM or SIGINT.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
