package deploy

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/testkit"
)

// promQuery runs an instant PromQL query against the Prometheus API at
// base and returns the result vector's samples: labels and value.
func promQuery(base, query string) ([]promSample, error) {
	res, err := http.Get(base + "/api/v1/query?" + url.Values{"query": {query}}.Encode())
	if err != nil {
		return nil, err
	}
	defer func() { _ = res.Body.Close() }()
	var doc struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(res.Body).Decode(&doc); err != nil {
		return nil, err
	}
	if doc.Status != "success" {
		return nil, &promError{doc.Error}
	}
	var out []promSample
	for _, r := range doc.Data.Result {
		s, _ := r.Value[1].(string)
		v, _ := strconv.ParseFloat(s, 64)
		out = append(out, promSample{labels: r.Metric, value: v})
	}
	return out, nil
}

type promSample struct {
	labels map[string]string
	value  float64
}

type promError struct{ msg string }

func (e *promError) Error() string { return "prometheus: " + e.msg }

// TestComposeMonitoring runs the compose file with its monitoring profile,
// as docs/operations.md says, and checks what an operator would: Prometheus scrapes
// every replica (up = 1 for each, named by loginsvc_replica_info), counts
// the requests sent through the lb, the replicas' metrics port is not
// published, and the replicas log JSON lines, one per request.
func TestComposeMonitoring(t *testing.T) {
	promPort := strings.TrimPrefix(testkit.FreeAddr(t), "127.0.0.1:")
	s := startComposeStack(t, nil, "COMPOSE_PROFILES=monitoring", "PROMETHEUS_PORT="+promPort)
	prom := "http://127.0.0.1:" + promPort

	ids := s.replicas(t)
	if len(ids) != composeReplicas {
		t.Fatalf("%d app replicas running, want %d: %v", len(ids), composeReplicas, ids)
	}
	admin := testkit.Browser(t)
	postLogin(t, admin, s.base, testUser, testPassword, nil)
	const views = 30
	for i := range views {
		status, by, body, err := tryGet(admin, s.base+"/", nil)
		if err != nil || status != http.StatusOK || !loggedIn(body, testUser) {
			t.Fatalf("GET / #%d (served by %q): status %d, err %v", i+1, by, status, err)
		}
	}

	testkit.Eventually(t, "Prometheus scrapes every replica (up == 1)", 90*time.Second, func() (bool, string) {
		up, err := promQuery(prom, `up{job="loginsvc"}`)
		if err != nil {
			return false, err.Error()
		}
		healthy := 0
		for _, u := range up {
			if u.value == 1 {
				healthy++
			}
		}
		return healthy == composeReplicas && len(up) == composeReplicas, "up: " + strconv.Itoa(healthy) + " of " + strconv.Itoa(len(up)) + " targets"
	})
	testkit.Eventually(t, "Prometheus names the replicas by their INSTANCE_ID", 30*time.Second, func() (bool, string) {
		info, err := promQuery(prom, `loginsvc_replica_info`)
		if err != nil {
			return false, err.Error()
		}
		var names []string
		for _, i := range info {
			names = append(names, i.labels["replica"])
		}
		slices.Sort(names)
		return slices.Equal(names, ids), "replicas " + strings.Join(names, ",") + ", want " + strings.Join(ids, ",")
	})
	// docs/operations.md's query: page views per second, by replica.
	testkit.Eventually(t, "the request counter holds the page views", 30*time.Second, func() (bool, string) {
		got, err := promQuery(prom, `sum(loginsvc_http_requests_total{route="GET /{$}",status="200"})`)
		if err != nil {
			return false, err.Error()
		}
		if len(got) != 1 {
			return false, "no sample"
		}
		return got[0].value >= views, "sum = " + strconv.FormatFloat(got[0].value, 'f', -1, 64)
	})
	if _, err := promQuery(prom, `sum by (instance) (rate(loginsvc_http_requests_total[1m]))`); err != nil {
		t.Errorf("docs/operations.md's rate query: %v", err)
	}

	for _, id := range ids {
		ports := docker(t, "inspect", "-f", `{{json .NetworkSettings.Ports}}`, id)
		var bound map[string][]struct{ HostIP, HostPort string }
		if err := json.Unmarshal([]byte(ports), &bound); err != nil {
			t.Fatalf("docker inspect %s ports %q: %v", id, ports, err)
		}
		if len(bound["9090/tcp"]) > 0 {
			t.Errorf("replica %s publishes its metrics port: %v", id, bound["9090/tcp"])
		}
	}

	requests := 0
	for _, line := range strings.Split(s.must(t, "logs", "--no-color", "--no-log-prefix", "app"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("replica log line is not JSON: %q", line)
			continue
		}
		if rec["msg"] == "request" && rec["route"] != nil && rec["request_id"] != nil && rec["replica"] != nil {
			requests++
		}
	}
	if requests < views {
		t.Errorf("JSON request lines in the replicas' logs: got %d, want at least %d", requests, views)
	}
	if strings.Contains(s.must(t, "logs", "--no-color", "app"), testPassword) {
		t.Error("the replicas' logs show the bootstrap password")
	}
}
