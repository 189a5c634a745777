package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testutil/envoyproc"
)

// drainDelay is extauthz's default --drain-delay, passed explicitly because
// the harness's environment turns the delay off for the other tests.
const drainDelay = 15 * time.Second

// hostHealth returns Envoy's health flags for one endpoint of a cluster.
func hostHealth(e *envoyproc.Process, cluster, addr string) string {
	flags, err := e.HostHealth(cluster)
	if err != nil {
		return "admin error: " + err.Error()
	}
	if v, ok := flags[addr]; ok {
		return v
	}
	return "absent"
}

// TestEnvoyDrainOneReplica: the shipped envoy.yaml with two extauthz
// replicas behind its extauthz cluster (health checks every 2 s, unhealthy
// after 2). Under steady load through Envoy, one replica gets SIGTERM: it
// reports NOT_SERVING but keeps answering until Envoy has marked it
// unhealthy and moved every check to the other, then stops. Not one client
// request fails.
func TestEnvoyDrainOneReplica(t *testing.T) {
	keyFile, codec := newKey(t)
	bin := extauthzBin(t)
	args := []string{"--drain-delay", drainDelay.String(), "--shutdown-timeout", "5s"}
	a := startServe(t, bin, keyFile, false, args...)
	b := startServe(t, bin, keyFile, false, args...)
	s := newEnvoyStack(t, stackOptions{edit: func(cfg *envoyproc.Config) error {
		return cfg.SetClusterEndpoints("extauthz", []string{a.grpc, b.grpc})
	}})
	capa, err := codec.Seal(subjectFor(shippedID, shippedTargets), time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(20 * time.Second)
	for hostHealth(s.envoy, "extauthz", a.grpc) != "healthy" || hostHealth(s.envoy, "extauthz", b.grpc) != "healthy" {
		if time.Now().After(deadline) {
			t.Fatalf("replicas not healthy in Envoy: %s, %s", hostHealth(s.envoy, "extauthz", a.grpc), hostHealth(s.envoy, "extauthz", b.grpc))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Load: a few clients sending allowed requests through Envoy as an
	// HTTP proxy, each on its own keep-alive connection.
	proxyURL, _ := url.Parse("http://" + s.proxy)
	var (
		ok, total atomic.Int64
		failMu    sync.Mutex
		failures  []string
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", "http://"+apiHost+"/api/openrouter/chat", nil)
				req.Header.Set(capabilityHdr, capa)
				resp, err := c.Do(req)
				total.Add(1)
				if err != nil {
					failMu.Lock()
					failures = append(failures, err.Error())
					failMu.Unlock()
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failMu.Lock()
					failures = append(failures, fmt.Sprintf("%s %d %s", time.Now().Format("15:04:05.000"), resp.StatusCode, body))
					failMu.Unlock()
					continue
				}
				ok.Add(1)
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	time.Sleep(time.Second)
	if len(a.decisions()) == 0 || len(b.decisions()) == 0 {
		t.Fatalf("before the drain, both replicas should decide: %d and %d decisions", len(a.decisions()), len(b.decisions()))
	}

	aBefore := len(a.decisions())
	start := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var unhealthyAfter time.Duration
	aAtUnhealthy := aBefore
	for exited := false; !exited; {
		select {
		case <-a.done:
			exited = true
		case <-time.After(100 * time.Millisecond):
		}
		if unhealthyAfter == 0 && strings.Contains(hostHealth(s.envoy, "extauthz", a.grpc), "failed_active_hc") {
			unhealthyAfter, aAtUnhealthy = time.Since(start), len(a.decisions())
		}
		if time.Since(start) > drainDelay+10*time.Second {
			t.Fatalf("the draining replica still runs %v after SIGTERM", time.Since(start))
		}
	}
	exitAfter := time.Since(start)
	time.Sleep(time.Second) // load keeps going on the remaining replica
	close(stop)
	wg.Wait()
	b.cmd.Process.Kill() // not another drain delay in the clean-up

	failMu.Lock()
	defer failMu.Unlock()
	// A check that outlives the filter's 0.5 s timeout is refused (503) by
	// design; on a loaded machine a few do, drain or not (Envoy counts them
	// as upstream_rq_timeout). Every other failure is the drain's fault.
	timeouts, err := s.envoy.Stat("cluster.extauthz.upstream_rq_timeout")
	if err != nil {
		t.Fatal(err)
	}
	if timeouts < 0 {
		timeouts = 0
	}
	if int64(len(failures)) > timeouts {
		t.Errorf("%d of %d requests failed during the drain, %d of them by the check timeout; first: %s", len(failures), total.Load(), timeouts, failures[0])
	} else if len(failures) > 0 {
		t.Logf("%d requests failed, each a check slower than the 0.5 s filter timeout on a loaded machine (upstream_rq_timeout %d), not the drain", len(failures), timeouts)
	}
	if unhealthyAfter == 0 {
		t.Errorf("Envoy never marked the draining replica unhealthy before it exited (after %v)", exitAfter)
	} else if unhealthyAfter >= exitAfter {
		t.Errorf("Envoy marked the draining replica unhealthy after %v, but it exited after %v", unhealthyAfter, exitAfter)
	}
	if exitAfter < drainDelay {
		t.Errorf("the draining replica exited after %v, before its drain delay %v", exitAfter, drainDelay)
	}
	t.Logf("drain behind Envoy: %d requests, %d ok, %d failed; replica A decided %d checks after SIGTERM (%d before Envoy marked it unhealthy at %v), exited after %v; replica B decided %d in all",
		total.Load(), ok.Load(), len(failures), len(a.decisions())-aBefore, aAtUnhealthy-aBefore,
		unhealthyAfter.Round(10*time.Millisecond), exitAfter.Round(10*time.Millisecond), len(b.decisions()))
}
