package system

import (
	"fmt"
	"testing"
	"time"
)

// stopIdempotencyLeader stops (SIGTERM) the node leading the idempotency
// bucket's stream while commands flow, keeps it down for a third of the
// batch, and starts it again. Claims and records fail until a new leader
// is elected: the commands caught then must go back to the stream without
// spending their budget, and none may be dead-lettered for it (issue 19).
func stopIdempotencyLeader(t *testing.T, h *harness, f *flow) string {
	const stream = "KV_CHAT_IDEMPOTENCY"
	leader := h.streamLeader(t, stream)
	node := h.cluster.Node(t, leader)
	down := time.Now()
	node.Stop(t, 10*time.Second)
	f.waitPublished(t, int(f.published.Load())+f.total/3)
	newLeader := h.streamLeader(t, stream)
	node.Start(t)
	h.cluster.WaitHealthy(t)
	return fmt.Sprintf("stop %s (%s leader) for %v, %s took over, start it", leader, stream, time.Since(down).Round(100*time.Millisecond), newLeader)
}
