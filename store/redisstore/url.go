package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// errURL wraps every URL problem. Messages name the part that is wrong but
// never repeat the URL, which may hold a password.
var errURL = errors.New("redisstore: bad store URL")

func urlErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errURL, fmt.Sprintf(format, args...))
}

// target is a parsed store URL.
type target struct {
	kind     string // "single", "sentinel", "cluster"
	tls      bool
	addrs    []string
	username string
	password string
	db       int
	master   string
}

// parseURL parses the URL forms documented on [Open], applying query
// parameters to o.
func parseURL(raw string, o *Options) (*target, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, urlErr("want redis://, rediss://, redis-sentinel:// or redis-cluster://")
	}
	t := &target{}
	defPort := "6379"
	switch strings.ToLower(scheme) {
	case "redis":
		t.kind = "single"
	case "rediss":
		t.kind, t.tls = "single", true
	case "redis-sentinel":
		t.kind, defPort = "sentinel", "26379"
	case "rediss-sentinel":
		t.kind, t.tls, defPort = "sentinel", true, "26379"
	case "redis-cluster":
		t.kind = "cluster"
	case "rediss-cluster":
		t.kind, t.tls = "cluster", true
	default:
		return nil, urlErr("unknown scheme %q: want redis, rediss, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster", scheme)
	}
	if strings.Contains(rest, "#") {
		return nil, urlErr("a fragment (#) is not allowed; percent-encode '#' in a password as %%23")
	}
	rest, rawQuery, _ := strings.Cut(rest, "?")
	authority, path, _ := strings.Cut(rest, "/")
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo := authority[:i]
		authority = authority[i+1:]
		user, pass, hasPass := strings.Cut(userinfo, ":")
		var err error
		if t.username, err = url.PathUnescape(user); err != nil {
			return nil, urlErr("user name is not valid percent-encoding")
		}
		if hasPass {
			if t.password, err = url.PathUnescape(pass); err != nil {
				return nil, urlErr("password is not valid percent-encoding")
			}
		}
	}
	if authority == "" {
		authority = "localhost"
	}
	for _, h := range strings.Split(authority, ",") {
		if h == "" {
			return nil, urlErr("empty host in host list")
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			// No port: the whole thing is the host (IPv6 needs brackets).
			host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), defPort
			if strings.ContainsAny(host, "[]") {
				return nil, urlErr("malformed host %q", h)
			}
		}
		if host == "" {
			return nil, urlErr("empty host name")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, urlErr("bad port %q", port)
		}
		t.addrs = append(t.addrs, net.JoinHostPort(host, port))
	}
	if t.kind == "single" && len(t.addrs) > 1 {
		return nil, urlErr("several hosts given: use redis-cluster:// or redis-sentinel://")
	}

	path = strings.TrimSuffix(path, "/")
	switch t.kind {
	case "single":
		if path != "" {
			db, err := strconv.Atoi(path)
			if err != nil || db < 0 {
				return nil, urlErr("path must be a database number")
			}
			t.db = db
		}
	case "sentinel":
		// /master-name or /master-name/db
		name, db, hasDB := strings.Cut(path, "/")
		t.master = name
		if hasDB {
			n, err := strconv.Atoi(db)
			if err != nil || n < 0 {
				return nil, urlErr("path must be /master-name or /master-name/db")
			}
			t.db = n
		}
	case "cluster":
		if path != "" && path != "0" {
			return nil, urlErr("Redis Cluster has only database 0")
		}
	}

	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, urlErr("malformed query")
	}
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "db":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, urlErr("db must be a database number")
			}
			if t.kind == "cluster" && n != 0 {
				return nil, urlErr("Redis Cluster has only database 0")
			}
			t.db = n
		case "master", "master_set":
			if t.kind != "sentinel" {
				return nil, urlErr("%s is for redis-sentinel:// only", k)
			}
			t.master = v
		case "prefix":
			o.Prefix = v
		case "timeout", "dial_timeout", "cache_ttl", "cache_staleness":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return nil, urlErr("%s must be a duration such as 500ms", k)
			}
			switch k {
			case "timeout":
				o.Timeout = d
			case "dial_timeout":
				o.DialTimeout = d
			case "cache_ttl":
				o.CacheTTL = d
			case "cache_staleness":
				o.CacheStaleness = d
			}
		case "cache_size":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, urlErr("cache_size must be a number of bytes")
			}
			o.CacheSize = n
		case "client_cache", "cache":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, urlErr("%s must be true or false", k)
			}
			o.DisableCache = !b
		case "client_name":
			o.ClientName = v
		case "seal":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, urlErr("seal must be true or false")
			}
			o.Unsealed = !b
		default:
			return nil, urlErr("unknown parameter %q", k)
		}
	}
	if t.kind == "sentinel" && t.master == "" {
		return nil, urlErr("redis-sentinel:// needs a master name: redis-sentinel://host:26379/mymaster or ?master=mymaster")
	}
	return t, nil
}

// clientOption turns a target and options into rueidis options.
func (t *target) clientOption(o *Options) rueidis.ClientOption {
	co := rueidis.ClientOption{
		InitAddress:       t.addrs,
		Username:          t.username,
		Password:          t.password,
		SelectDB:          t.db,
		ClientName:        o.ClientName,
		DisableCache:      o.DisableCache,
		CacheSizeEachConn: o.CacheSize,
		ConnWriteTimeout:  o.Timeout,
	}
	co.Dialer.Timeout = o.DialTimeout
	co.Dialer.KeepAlive = time.Second
	if t.tls {
		if o.TLSConfig != nil {
			co.TLSConfig = o.TLSConfig.Clone()
		} else {
			co.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		// An empty ServerName lets each connection verify the host it dials,
		// which a cluster of several hosts needs.
	}
	if dial := o.Dial; dial != nil {
		co.DialCtxFn = func(ctx context.Context, addr string, d *net.Dialer, tc *tls.Config) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, d.Timeout)
			defer cancel()
			c, err := dial(ctx, addr)
			if err != nil || tc == nil {
				return c, err
			}
			if tc.ServerName == "" {
				tc = tc.Clone()
				tc.ServerName, _, _ = net.SplitHostPort(addr)
			}
			tlsc := tls.Client(c, tc)
			if err := tlsc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, err
			}
			return tlsc, nil
		}
	}
	mode := rueidis.ClientModeStandalone
	if t.kind == "cluster" {
		mode = rueidis.ClientModeCluster
	}
	o.PipelineMultiplex = multiplexFor(mode, o.PipelineMultiplex)
	co.PipelineMultiplex = o.PipelineMultiplex
	switch t.kind {
	case "single":
		co.ForceSingleClient = true
	case "sentinel":
		co.Sentinel = rueidis.SentinelOption{
			MasterSet: t.master,
			Username:  o.SentinelUsername,
			Password:  o.SentinelPassword,
			Dialer:    co.Dialer,
			TLSConfig: co.TLSConfig,
		}
	case "cluster":
		co.ShuffleInit = true
	}
	return co
}
