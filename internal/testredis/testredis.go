// Package testredis starts and finds Redis servers for tests: the shared
// standalone server named by LATCH_TEST_REDIS, private redis-server
// processes on free loopback ports (which a test may kill and restart),
// replicas of them, a Redis Sentinel monitoring one, and a three-master
// Redis Cluster joined with redis-cli.
//
// Where a server or the redis-server binary is missing, the helpers skip the
// test with a message saying what to set or start, unless
// LATCH_REQUIRE_INTEGRATION=1 (CI sets it), in which case they fail it.
package testredis

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultAddr is the standalone Redis tests use when LATCH_TEST_REDIS is unset.
const DefaultAddr = "127.0.0.1:6379"

// Unavailable skips t with msg, or fails it when LATCH_REQUIRE_INTEGRATION=1.
func Unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("LATCH_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf("%s (LATCH_REQUIRE_INTEGRATION=1, so this is a failure)", msg)
	}
	t.Skip(msg)
}

// Addr returns the address of the shared standalone Redis (LATCH_TEST_REDIS,
// default 127.0.0.1:6379) after checking it answers PING; otherwise it skips
// or fails t as [Unavailable] does.
func Addr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("LATCH_TEST_REDIS")
	if addr == "" {
		addr = DefaultAddr
	}
	if err := ping(addr, 2*time.Second); err != nil {
		Unavailable(t, fmt.Sprintf("redis not reachable at %s (%v): set LATCH_TEST_REDIS or start redis-server", addr, err))
	}
	return addr
}

// ping sends an inline PING and waits for +PONG (or an auth error, which
// still proves a server is there).
func ping(addr string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH") {
		return nil
	}
	return fmt.Errorf("unexpected reply %q", strings.TrimSpace(line))
}

// binary returns the path of name or skips/fails t.
func binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, fmt.Sprintf("%s not installed (%v): install redis-server (Debian: apt-get install redis-server) to run the Redis tests", name, err))
	}
	return p
}

// portMu serialises port picking within the process, so two helpers never
// pick the same port before either binds it.
var portMu sync.Mutex

// freePort returns a loopback port that is free now and, when bus is true,
// whose cluster-bus port (port+10000) is free as well.
func freePort(t testing.TB, bus bool) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testredis: listen: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !bus {
			return port
		}
		if port+10000 > 65535 {
			continue
		}
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		if err != nil {
			continue
		}
		l2.Close()
		return port
	}
	t.Fatalf("testredis: no free port pair found")
	return 0
}

// Server is a redis-server process this package started on a loopback port.
// Kill and Restart let a test take it away and bring it back on the same
// port. Its methods are not safe for concurrent use.
type Server struct {
	t    testing.TB
	bin  string
	args []string
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	out  *bytes.Buffer
}

// StartServer starts a private, persistence-free redis-server on a free
// loopback port and stops it when t ends. extra arguments are appended to
// the command line (e.g. "--cluster-enabled", "yes").
func StartServer(t testing.TB, extra ...string) *Server {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	bin := binary(t, "redis-server")
	cluster := false
	for _, a := range extra {
		if a == "--cluster-enabled" {
			cluster = true
		}
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(t, cluster)
		dir := t.TempDir()
		args := []string{
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--dir", dir,
			"--save", "",
			"--appendonly", "no",
			"--protected-mode", "yes",
		}
		if cluster {
			args = append(args, "--cluster-config-file", filepath.Join(dir, "nodes.conf"))
		}
		args = append(args, extra...)
		s := &Server{t: t, bin: bin, args: args, port: port, dir: dir}
		if err = s.start(); err == nil {
			t.Cleanup(s.stop)
			return s
		}
	}
	t.Fatalf("testredis: start redis-server: %v", err)
	return nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Port is the server's TCP port.
func (s *Server) Port() int { return s.port }

func (s *Server) start() error {
	s.out = new(bytes.Buffer)
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout = s.out
	cmd.Stderr = s.out
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("redis-server exited at start: %s", lastLines(s.out.String(), 5))
		default:
		}
		if ping(s.Addr(), 200*time.Millisecond) == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.kill()
	return fmt.Errorf("redis-server did not answer on %s within 10s", s.Addr())
}

// kill sends SIGKILL and waits for the process to go.
func (s *Server) kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

func (s *Server) stop() { s.kill() }

// Kill kills the server with SIGKILL (as kill -9 would) and waits until it
// has exited. Its data is lost: it runs without persistence.
func (s *Server) Kill() {
	s.t.Helper()
	if s.cmd == nil {
		s.t.Fatalf("testredis: Kill of a server that is not running")
	}
	s.kill()
}

// Pause stops the server with SIGSTOP: connections stay open but nothing
// answers, as with a hung or partitioned server. Resume undoes it.
func (s *Server) Pause() {
	s.t.Helper()
	if s.cmd == nil {
		s.t.Fatalf("testredis: Pause of a server that is not running")
	}
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("testredis: SIGSTOP: %v", err)
	}
}

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() {
	s.t.Helper()
	if s.cmd == nil {
		s.t.Fatalf("testredis: Resume of a server that is not running")
	}
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.t.Fatalf("testredis: SIGCONT: %v", err)
	}
}

// Restart starts the killed server again on the same port.
func (s *Server) Restart() {
	s.t.Helper()
	if s.cmd != nil {
		s.t.Fatalf("testredis: Restart of a server that is running")
	}
	var err error
	// The port was ours a moment ago; another process may grab it, so retry
	// briefly before giving up.
	for range 20 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("testredis: restart redis-server on %s: %v", s.Addr(), err)
}

// CLI runs redis-cli against the server with args and returns its output.
func (s *Server) CLI(args ...string) (string, error) {
	return cli(append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(s.port)}, args...)...)
}

func cli(args ...string) (string, error) {
	bin, err := exec.LookPath("redis-cli")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

// Cluster is a Redis Cluster of private redis-server processes.
type Cluster struct {
	Nodes []*Server
}

// Addrs returns every node's host:port.
func (c *Cluster) Addrs() []string {
	a := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		a[i] = n.Addr()
	}
	return a
}

// StartCluster starts three cluster-enabled redis-server processes on free
// loopback ports, joins them as a three-master cluster (no replicas) with
// redis-cli --cluster create, waits until every node reports cluster_state:ok
// and returns their addresses. The processes are killed when t ends.
func StartCluster(t testing.TB) []string {
	t.Helper()
	return NewCluster(t, 3).Addrs()
}

// NewCluster is StartCluster with n masters, returning the servers.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return NewClusterReplicas(t, n, 0)
}

// NewClusterReplicas starts a cluster of masters masters with replicas
// replicas each (redis-cli --cluster create --cluster-replicas), extra
// arguments appended to every node's command line (e.g. a shorter
// "--cluster-node-timeout"; the default here is 5000 ms), and waits until
// every node reports cluster_state:ok and maps all 16384 slots and every
// replica is in sync with its master.
func NewClusterReplicas(t testing.TB, masters, replicas int, extra ...string) *Cluster {
	t.Helper()
	binary(t, "redis-cli")
	c := &Cluster{}
	args := append([]string{"--cluster-enabled", "yes", "--cluster-node-timeout", "5000"}, extra...)
	for range masters * (1 + replicas) {
		c.Nodes = append(c.Nodes, StartServer(t, args...))
	}
	args = []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := cli(args...); err != nil {
		t.Fatalf("testredis: redis-cli --cluster create: %v\n%s", err, lastLines(out, 10))
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := c.ready(c.Nodes)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("testredis: cluster on %v not ok after 60s: %v", c.Addrs(), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ready reports why the cluster, as the nodes in live see it, is not yet
// whole: every one of them reports cluster_state:ok with all slots mapped
// (cluster_state:ok can come before every node has learned every other's
// slots) and every replica's link to its master is up and synced.
func (c *Cluster) ready(live []*Server) error {
	for _, s := range live {
		out, err := s.CLI("cluster", "info")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "cluster_state:ok") || !strings.Contains(out, "cluster_slots_ok:16384") {
			return fmt.Errorf("%s: %s", s.Addr(), strings.Join(strings.Fields(lastLines(out, 100)), " "))
		}
		out, err = s.CLI("info", "replication")
		if err != nil {
			return err
		}
		if strings.Contains(out, "role:slave") && (!strings.Contains(out, "master_link_status:up") ||
			!strings.Contains(out, "master_sync_in_progress:0")) {
			return fmt.Errorf("replica %s not in sync", s.Addr())
		}
	}
	return nil
}

// ClusterNode is one line of CLUSTER NODES.
type ClusterNode struct {
	ID, Addr string // Addr is host:port (the bus port and hostname cut off)
	Flags    []string
	MasterID string // for a replica; "-" for a master
	Slots    int    // how many slots it serves
}

// Master reports whether the node is a master.
func (n ClusterNode) Master() bool { return slices.Contains(n.Flags, "master") }

// Topology returns the cluster as from sees it (CLUSTER NODES).
func (c *Cluster) Topology(from *Server) ([]ClusterNode, error) {
	out, err := from.CLI("cluster", "nodes")
	if err != nil {
		return nil, fmt.Errorf("cluster nodes on %s: %v: %s", from.Addr(), err, out)
	}
	var nodes []ClusterNode
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		addr, _, _ = strings.Cut(addr, ",")
		n := ClusterNode{ID: f[0], Addr: addr, Flags: strings.Split(strings.ReplaceAll(f[2], "myself,", ""), ","), MasterID: f[3]}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot being migrated or imported
			}
			lo, hi, ok := strings.Cut(r, "-")
			a, _ := strconv.Atoi(lo)
			b := a
			if ok {
				b, _ = strconv.Atoi(hi)
			}
			n.Slots += b - a + 1
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// Server returns the node at addr, or nil.
func (c *Cluster) Server(addr string) *Server {
	for _, s := range c.Nodes {
		if s.Addr() == addr {
			return s
		}
	}
	return nil
}

// MasterWithReplica returns a master serving slots and one of its replicas,
// as the first node sees the cluster.
func (c *Cluster) MasterWithReplica(t testing.TB) (master, replica *Server) {
	t.Helper()
	nodes, err := c.Topology(c.Nodes[0])
	if err != nil {
		t.Fatalf("testredis: %v", err)
	}
	for _, m := range nodes {
		if !m.Master() || m.Slots == 0 {
			continue
		}
		for _, r := range nodes {
			if r.MasterID == m.ID {
				return c.Server(m.Addr), c.Server(r.Addr)
			}
		}
	}
	t.Fatalf("testredis: no master with a replica in %v", nodes)
	return nil, nil
}

// NodeID returns the cluster node ID of s (CLUSTER MYID).
func (c *Cluster) NodeID(t testing.TB, s *Server) string {
	t.Helper()
	out, err := s.CLI("cluster", "myid")
	if err != nil {
		t.Fatalf("testredis: cluster myid on %s: %v: %s", s.Addr(), err, out)
	}
	return strings.TrimSpace(out)
}

// WaitPromoted waits, for at most within, until replica reports itself a
// master (its master failed and it won the election) and every node in
// live reports the cluster ok again with all slots served.
func (c *Cluster) WaitPromoted(t testing.TB, replica *Server, live []*Server, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		out, err := replica.CLI("role")
		var rerr error
		if err == nil && strings.HasPrefix(strings.TrimSpace(out), "master") {
			if rerr = c.ready(live); rerr == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("testredis: %s not promoted after %v: role %q %v %v", replica.Addr(), within, lastLines(out, 1), err, rerr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitReady waits, for at most within, until every node in live reports
// the cluster ok with all slots served and every replica in sync.
func (c *Cluster) WaitReady(t testing.TB, live []*Server, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := c.ready(live)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testredis: cluster not ready after %v: %v", within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Reshard moves slots slots from the master from to the master to with
// redis-cli --cluster reshard (MIGRATE of every key, with ASK redirects
// while a slot moves), and returns redis-cli's output.
func (c *Cluster) Reshard(from, to *Server, slots int) (string, error) {
	nodes, err := c.Topology(from)
	if err != nil {
		return "", err
	}
	var fromID, toID string
	for _, n := range nodes {
		switch n.Addr {
		case from.Addr():
			fromID = n.ID
		case to.Addr():
			toID = n.ID
		}
	}
	if fromID == "" || toID == "" {
		return "", fmt.Errorf("reshard: %s or %s not in the cluster", from.Addr(), to.Addr())
	}
	return cli("--cluster", "reshard", from.Addr(), "--cluster-from", fromID, "--cluster-to", toID,
		"--cluster-slots", strconv.Itoa(slots), "--cluster-yes", "--cluster-pipeline", "10")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// StartReplica starts a private redis-server replicating master (as
// --replicaof) and waits until its link to master is up and the initial
// sync is done. It sets master's repl-diskless-sync-delay to 0 first, so
// the sync does not wait the default 5s for more replicas. The replica is
// killed when t ends.
func StartReplica(t testing.TB, master *Server) *Server {
	t.Helper()
	binary(t, "redis-cli")
	if out, err := master.CLI("config", "set", "repl-diskless-sync-delay", "0"); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("testredis: CONFIG SET repl-diskless-sync-delay on %s: %v %s", master.Addr(), err, out)
	}
	r := StartServer(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port()))
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := r.CLI("info", "replication")
		if err == nil && strings.Contains(out, "master_link_status:up") &&
			strings.Contains(out, "master_sync_in_progress:0") {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("testredis: replica %s of %s not in sync after 20s: %v\n%s", r.Addr(), master.Addr(), err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ReplOffset returns the server's replication offset: master_repl_offset
// on a master, slave_repl_offset (what it has received) on a replica.
func (s *Server) ReplOffset() (int64, error) {
	out, err := s.CLI("info", "replication")
	if err != nil {
		return 0, fmt.Errorf("info replication: %v: %s", err, out)
	}
	field := "master_repl_offset"
	if strings.Contains(out, "role:slave") {
		field = "slave_repl_offset"
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in INFO replication", field)
}

// SentinelMaster is the name the Sentinel of [StartSentinel] monitors.
const SentinelMaster = "latchtest"

// Sentinel is a Redis Sentinel process this package started, monitoring
// one master as [SentinelMaster] with quorum 1, down-after-milliseconds
// 1000 and failover-timeout 5000, so a failover takes a few seconds.
type Sentinel struct {
	*Server // the sentinel process (Addr, Port, Kill, CLI)
}

// StartSentinel starts one Sentinel (redis-server <conf> --sentinel, with a
// writable config file in a private directory, as Sentinel rewrites it) on
// a free loopback port monitoring master, waits until it answers SENTINEL
// GET-MASTER-ADDR-BY-NAME and, for each of replicas, until it has
// discovered the replica and sees it connected and in sync, so a failover
// has a replica to promote. It is killed when t ends.
func StartSentinel(t testing.TB, master *Server, replicas ...*Server) *Sentinel {
	t.Helper()
	portMu.Lock()
	bin := binary(t, "redis-server")
	binary(t, "redis-cli")
	var s *Server
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(t, false)
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
			"sentinel monitor %s 127.0.0.1 %d 1\n"+
			"sentinel down-after-milliseconds %s 1000\n"+
			"sentinel failover-timeout %s 5000\n",
			port, dir, SentinelMaster, master.Port(), SentinelMaster, SentinelMaster)
		if err = os.WriteFile(conf, []byte(body), 0o600); err != nil {
			portMu.Unlock()
			t.Fatalf("testredis: write sentinel config: %v", err)
		}
		s = &Server{t: t, bin: bin, args: []string{conf, "--sentinel"}, port: port, dir: dir}
		if err = s.start(); err == nil {
			break
		}
		s = nil
	}
	portMu.Unlock()
	if s == nil {
		t.Fatalf("testredis: start sentinel: %v", err)
	}
	t.Cleanup(s.stop)
	sen := &Sentinel{Server: s}
	want := make(map[string]bool)
	for _, r := range replicas {
		want[r.Addr()] = true
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		addr, err := sen.MasterAddr()
		var ok bool
		if err == nil && addr == master.Addr() {
			ok, err = sen.replicasReady(want)
		}
		if ok {
			return sen
		}
		if time.Now().After(deadline) {
			t.Fatalf("testredis: sentinel on %s not ready after 20s (master %q): %v", s.Addr(), addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// MasterAddr returns the master's host:port as the Sentinel reports it
// (SENTINEL GET-MASTER-ADDR-BY-NAME).
func (s *Sentinel) MasterAddr() (string, error) {
	out, err := s.CLI("sentinel", "get-master-addr-by-name", SentinelMaster)
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, out)
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return "", fmt.Errorf("unexpected reply %q", strings.TrimSpace(out))
	}
	return net.JoinHostPort(f[0], f[1]), nil
}

// WaitMaster polls the Sentinel until it reports addr as the master, for
// at most within, and fails t if it does not.
func (s *Sentinel) WaitMaster(t testing.TB, addr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, err := s.MasterAddr()
		if err == nil && got == addr {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testredis: sentinel still reports master %q (%v) after %v, want %s", got, err, within, addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// replicasReady reports whether every address in want is among the
// Sentinel's replicas of the master with flags exactly "slave" (not down
// or disconnected) and its link to the master up.
func (s *Sentinel) replicasReady(want map[string]bool) (bool, error) {
	if len(want) == 0 {
		return true, nil
	}
	out, err := s.CLI("sentinel", "replicas", SentinelMaster)
	if err != nil {
		return false, fmt.Errorf("%v: %s", err, out)
	}
	// redis-cli prints the nested reply flat, one element a line: each
	// replica is a run of field/value pairs starting with "name".
	lines := strings.Split(strings.TrimSpace(out), "\n")
	ready := 0
	var cur map[string]string
	flush := func() {
		if cur != nil && want[cur["name"]] && cur["flags"] == "slave" && cur["master-link-status"] == "ok" {
			ready++
		}
	}
	for i := 0; i+1 < len(lines); i += 2 {
		k, v := strings.TrimSpace(lines[i]), strings.TrimSpace(lines[i+1])
		if k == "name" {
			flush()
			cur = map[string]string{}
		}
		if cur != nil {
			cur[k] = v
		}
	}
	flush()
	if ready < len(want) {
		return false, fmt.Errorf("%d of %d replicas ready: %s", ready, len(want), strings.Join(lines, " "))
	}
	return true, nil
}
