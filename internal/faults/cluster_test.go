package faults

import (
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/testredis"
)

// clusterURL is the --store URL of c, every node a seed.
func clusterURL(c *testredis.Cluster) string {
	return "redis-cluster://" + strings.Join(c.Addrs(), ",") + "?timeout=500ms"
}

// others is the nodes of c but not.
func others(c *testredis.Cluster, not *testredis.Server) []*testredis.Server {
	var live []*testredis.Server
	for _, n := range c.Nodes {
		if n != not {
			live = append(live, n)
		}
	}
	return live
}

// TestRedisClusterFailover runs two replicas on a Redis Cluster of three
// masters with a replica each, kills a master under load (kill -9) and
// lets the cluster promote its replica (node timeout 2 s), then restarts
// the killed node, which rejoins as a replica of the promoted one.
// Recovery counts from the promotion (the promoted node is a master and
// every live node reports the cluster ok).
//
// Replication is asynchronous and the store does not WAIT for replicas: a
// write acknowledged in the last moment before the kill can be lost, so
// the checker's 0 lost is a measurement here, not a guarantee (as with
// the Sentinel failover).
func TestRedisClusterFailover(t *testing.T) {
	skipShort(t)
	c := testredis.NewClusterReplicas(t, 3, 1, "--cluster-node-timeout", "2000")
	d := deploy(t, 2, clusterURL(c))
	drive(t, d, 8, Options{Tolerance: redisTolerance}, &History{}, func(h *History) {
		time.Sleep(phase())
		for range rounds(1, 3) {
			master, replica := c.MasterWithReplica(t)
			start := time.Now()
			master.Kill()
			c.WaitPromoted(t, replica, others(c, master), time.Minute)
			h.Inject("redis cluster failover", start, time.Now())
			t.Logf("master %s killed, replica %s promoted after %v", master.Addr(), replica.Addr(), time.Since(start).Round(time.Millisecond))
			time.Sleep(phase())
			master.Restart() // it rejoins as a replica of the promoted node
			c.WaitReady(t, c.Nodes, time.Minute)
			time.Sleep(phase())
		}
	})
}

// TestRedisClusterReshard runs two replicas on a Redis Cluster of three
// masters with a replica each and, under load, moves a share of the slots
// from one master to another with redis-cli --cluster reshard: while a
// slot moves, its keys answer ASK (the key has moved) or TRYAGAIN (a
// script's keys are split between the nodes), and once it has moved,
// MOVED; the store's client (rueidis) must follow them. Nothing may be
// lost and nothing revoked accepted; the fault runs from the first slot
// moved to the last.
func TestRedisClusterReshard(t *testing.T) {
	skipShort(t)
	c := testredis.NewClusterReplicas(t, 3, 1)
	d := deploy(t, 2, clusterURL(c))
	slots := 2000
	if long() {
		slots = 5000
	}
	drive(t, d, 8, Options{Tolerance: redisTolerance}, &History{}, func(h *History) {
		time.Sleep(phase())
		for i := range rounds(1, 4) {
			nodes, err := c.Topology(c.Nodes[0])
			if err != nil {
				t.Fatal(err)
			}
			var masters []*testredis.Server
			for _, n := range nodes {
				if n.Master() && n.Slots > 0 {
					masters = append(masters, c.Server(n.Addr))
				}
			}
			from, to := masters[i%len(masters)], masters[(i+1)%len(masters)]
			start := time.Now()
			out, err := c.Reshard(from, to, min(slots, slotsOf(nodes, from.Addr())))
			if err != nil {
				t.Fatalf("reshard %s -> %s: %v\n%s", from.Addr(), to.Addr(), err, tail(out, 10))
			}
			h.Inject("redis cluster reshard", start, time.Now())
			moved, withKeys := movedSlots(out)
			t.Logf("moved %d slots (%d of them with keys) %s -> %s in %v", moved, withKeys, from.Addr(), to.Addr(), time.Since(start).Round(time.Millisecond))
			if withKeys == 0 {
				t.Errorf("the reshard moved no slot holding a key: the load's keys never migrated")
			}
			c.WaitReady(t, c.Nodes, time.Minute)
			time.Sleep(phase())
		}
	})
}

func slotsOf(nodes []testredis.ClusterNode, addr string) int {
	for _, n := range nodes {
		if n.Addr == addr {
			return n.Slots
		}
	}
	return 0
}

// movedSlots counts the slots redis-cli --cluster reshard reports moving
// ("Moving slot N from A to B: " and a dot per batch of keys MIGRATEd),
// and those of them that held keys.
func movedSlots(out string) (moved, withKeys int) {
	for _, line := range strings.Split(out, "\n") {
		// The plan comes first, a line a slot without " to ".
		_, rest, ok := strings.Cut(line, "Moving slot ")
		i := strings.LastIndex(rest, ": ")
		if !ok || !strings.Contains(rest, " to ") || i < 0 {
			continue
		}
		moved++
		if strings.Contains(rest[i:], ".") {
			withKeys++
		}
	}
	return moved, withKeys
}
