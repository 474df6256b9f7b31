package deploy

// The Helm chart's checks (no cluster runs here): helm lint, helm template
// decoded strictly into the API types (helm_render_test.go), and the
// invariants an SRE would otherwise check by eye, against what the
// server's source says (serversource_test.go).

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"loginsvc/internal/auth"
	"loginsvc/internal/store"
)

// secretEnv are the variables whose values are secrets: REDIS_URL holds
// Redis's password, the others are keys and passwords outright. They come
// from a Secret, never from a ConfigMap or a literal value.
var secretEnv = []string{"REDIS_URL", "DEVICE_COOKIE_KEY", "BOOTSTRAP_PASSWORD"}

func TestHelmLint(t *testing.T) {
	for _, c := range helmCases(t) {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"lint", ".", "--strict", "--namespace", helmNamespace, "--kube-version", helmKubeVersion}, c.args...)
			out, errOut, err := runHelm(t, args...)
			if err != nil {
				t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
			}
		})
	}
}

// TestHelmTemplate renders every case, decodes every object strictly, and
// checks the invariants.
func TestHelmTemplate(t *testing.T) {
	env := serverEnvVars(t)
	routes := webRoutes(t)
	headers := forwardAuthHeaders(t)
	shutdown := serverShutdownDeadline(t)
	for _, c := range helmCases(t) {
		t.Run(c.name, func(t *testing.T) {
			r := render(t, c)
			if r.Deployment == nil || r.Service == nil || len(r.ConfigMaps) != 1 {
				t.Fatalf("want a Deployment, a Service and one ConfigMap, got %+v", r)
			}
			pod := r.Deployment.Spec.Template
			if len(pod.Spec.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
			}
			ctr := pod.Spec.Containers[0]
			vars := containerEnv(t, r, ctr)

			t.Run("env vars are the server's", func(t *testing.T) {
				for _, name := range slices.Sorted(maps.Keys(vars)) {
					if !env[name] {
						t.Errorf("the chart sets %s, which cmd/server does not read (it reads %v)", name, slices.Sorted(maps.Keys(env)))
					}
				}
				if v := vars["INSTANCE_ID"]; v.ValueFrom == nil || v.ValueFrom.FieldRef == nil || v.ValueFrom.FieldRef.FieldPath != "metadata.name" {
					t.Errorf("INSTANCE_ID = %+v, want valueFrom.fieldRef metadata.name (the pod's name)", v)
				}
			})
			t.Run("secrets only from a Secret", func(t *testing.T) { checkSecrets(t, r, vars) })
			t.Run("probes on the server's routes", func(t *testing.T) { checkProbes(t, r, ctr, routes) })
			t.Run("grace period covers preStop, drain and shutdown", func(t *testing.T) { checkDrain(t, r, ctr, shutdown) })
			t.Run("rollout, spread and disruption budget", func(t *testing.T) { checkAvailability(t, r) })
			t.Run("security context", func(t *testing.T) { checkSecurityContext(t, r.Deployment) })
			t.Run("service and network policy", func(t *testing.T) { checkNetwork(t, r, ctr) })
			t.Run("forward auth", func(t *testing.T) { checkForwardAuth(t, r, routes, headers) })
		})
	}
}

// TestHelmValuesSchemaMatchesServer keeps values.schema.json's env names,
// which refuse a mistyped variable at install time, equal to what the
// server reads: each one is read, and every variable the server reads is
// either there or set by the chart itself.
func TestHelmValuesSchemaMatchesServer(t *testing.T) {
	env := serverEnvVars(t)
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			Env struct {
				AdditionalProperties *bool                      `json:"additionalProperties"`
				Properties           map[string]json.RawMessage `json:"properties"`
			} `json:"env"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	if ap := schema.Properties.Env.AdditionalProperties; ap == nil || *ap {
		t.Error("values.schema.json: env must have additionalProperties: false, so a mistyped name is refused")
	}
	covered := map[string]bool{}
	for name := range schema.Properties.Env.Properties {
		covered[name] = true
		if !env[name] {
			t.Errorf("values.schema.json allows env.%s, which cmd/server does not read", name)
		}
	}
	// What the chart sets itself, from every case's rendering.
	for _, c := range helmCases(t) {
		r := render(t, c)
		for name := range containerEnv(t, r, r.Deployment.Spec.Template.Spec.Containers[0]) {
			if _, inSchema := schema.Properties.Env.Properties[name]; !inSchema {
				covered[name] = true
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(env)) {
		if !covered[name] {
			t.Errorf("cmd/server reads %s, which the chart neither sets nor accepts in env: add it to values.schema.json's env properties (and to values.yaml's comment)", name)
		}
	}
}

// TestHelmRefuses checks that the chart fails to render, with a message
// naming the value, where the result would be broken.
func TestHelmRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a variable the server does not read", []string{"--set", "env.SESION_LIFETIME=1h"}, "SESION_LIFETIME"},
		{"a variable the chart sets", []string{"--set", "env.SHUTDOWN_DRAIN=30s"}, "SHUTDOWN_DRAIN"},
		{"a budget that blocks every drain", []string{"--set", "podDisruptionBudget.minAvailable=3", "--set", "podDisruptionBudget.maxUnavailable=null"}, "minAvailable"},
		{"a budget of no pods", []string{"--set", "podDisruptionBudget.maxUnavailable=0"}, "maxUnavailable"},
		{"both budgets", []string{"--set", "podDisruptionBudget.minAvailable=1"}, "not both"},
		{"a drain in fractions", []string{"--set-json", "shutdownDrain=2.5"}, "shutdownDrain"},
		{"a REDIS_URL of another scheme", []string{"--set", "secret.redisURL=http://redis:6379"}, "secret.redisURL"},
		{"a bootstrap user without a password", []string{"--set", "env.BOOTSTRAP_USER=admin"}, "bootstrapPassword"},
		{"an HTTPRoute without a Gateway", []string{"--set", "httpRoute.enabled=true"}, "parentRefs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"template", helmRelease, ".", "--namespace", helmNamespace, "--kube-version", helmKubeVersion}, tc.args...)
			out, errOut, err := runHelm(t, args...)
			if err == nil {
				t.Fatalf("helm %s rendered, want a refusal\n%s", strings.Join(args, " "), out)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("helm %s: error %q does not name %q", strings.Join(args, " "), errOut, tc.want)
			}
		})
	}
}

// TestHelmReadmeIngressNginx checks the ingress-nginx annotations of
// docs/forward-auth.md ("Forward auth on Kubernetes"),
// which no template renders: the auth-url path is a GET route of the
// service, and the response headers are the ones it answers with.
func TestHelmReadmeIngressNginx(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "forward-auth.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	m := regexp.MustCompile(`nginx\.ingress\.kubernetes\.io/auth-url: "([^"]+)"`).FindStringSubmatch(readme)
	if m == nil {
		t.Fatal(`docs/forward-auth.md: no nginx.ingress.kubernetes.io/auth-url: "…" annotation`)
	}
	u, err := url.Parse(m[1])
	if err != nil {
		t.Fatalf("docs/forward-auth.md auth-url %q: %v", m[1], err)
	}
	if !hasGETRoute(webRoutes(t), u.Path) {
		t.Errorf("docs/forward-auth.md auth-url path %s is not a GET route in internal/web/routes.go", u.Path)
	}
	m = regexp.MustCompile(`nginx\.ingress\.kubernetes\.io/auth-response-headers: "([^"]+)"`).FindStringSubmatch(readme)
	if m == nil {
		t.Fatal(`docs/forward-auth.md: no nginx.ingress.kubernetes.io/auth-response-headers: "…" annotation`)
	}
	if got, want := strings.Split(m[1], ","), forwardAuthHeaders(t); !slices.Equal(got, want) {
		t.Errorf("docs/forward-auth.md auth-response-headers %q, want the service's %q", got, want)
	}
}

// containerEnv is every variable the container gets: its env list and the
// keys of the ConfigMaps it takes whole (envFrom). A Secret taken whole is
// refused: its keys could be anything.
func containerEnv(t testing.TB, r *rendered, ctr corev1.Container) map[string]corev1.EnvVar {
	t.Helper()
	vars := map[string]corev1.EnvVar{}
	for _, from := range ctr.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm := configMap(t, r, from.ConfigMapRef.Name)
			for k, v := range cm.Data {
				vars[from.Prefix+k] = corev1.EnvVar{Name: from.Prefix + k, Value: v}
			}
		default:
			t.Fatalf("envFrom %+v: want only configMapRef (secrets by name, with secretKeyRef)", from)
		}
	}
	for _, e := range ctr.Env {
		if _, dup := vars[e.Name]; dup {
			t.Errorf("%s is set both in env and by envFrom", e.Name)
		}
		vars[e.Name] = e
	}
	return vars
}

func configMap(t testing.TB, r *rendered, name string) *corev1.ConfigMap {
	t.Helper()
	for _, cm := range r.ConfigMaps {
		if cm.Name == name {
			return cm
		}
	}
	t.Fatalf("no ConfigMap %q rendered", name)
	return nil
}

func checkSecrets(t *testing.T, r *rendered, vars map[string]corev1.EnvVar) {
	for _, name := range secretEnv {
		v, ok := vars[name]
		if !ok {
			if name == "BOOTSTRAP_PASSWORD" {
				continue
			}
			t.Errorf("%s is not set", name)
			continue
		}
		if v.ValueFrom == nil || v.ValueFrom.SecretKeyRef == nil || v.Value != "" {
			t.Errorf("%s = %+v, want valueFrom.secretKeyRef only", name, v)
		}
	}
	if _, user := vars["BOOTSTRAP_USER"]; user {
		if _, pw := vars["BOOTSTRAP_PASSWORD"]; !pw {
			t.Error("BOOTSTRAP_USER without BOOTSTRAP_PASSWORD: the server refuses to start")
		}
	}
	// Every secret value the chart holds, to look for in the ConfigMaps.
	var secrets []string
	for _, s := range r.Secrets {
		for k, v := range s.Data {
			secrets = append(secrets, string(v))
			switch k {
			case "REDIS_URL":
				if _, err := store.ParseURL(string(v)); err != nil {
					t.Errorf("Secret %s REDIS_URL does not parse as the server parses it: %v", s.Name, err)
				}
			case "DEVICE_COOKIE_KEY":
				if n := len(decodeDeviceKey(string(v))); n < auth.MinDeviceKeyBytes {
					t.Errorf("Secret %s DEVICE_COOKIE_KEY decodes to %d bytes, want at least %d", s.Name, n, auth.MinDeviceKeyBytes)
				}
			}
		}
		if len(s.StringData) > 0 {
			t.Errorf("Secret %s uses stringData; want data", s.Name)
		}
	}
	for _, cm := range r.ConfigMaps {
		for k, v := range cm.Data {
			if slices.Contains(secretEnv, k) {
				t.Errorf("ConfigMap %s holds %s, a secret", cm.Name, k)
			}
			for _, s := range secrets {
				if len(s) >= 8 && strings.Contains(v, s) {
					t.Errorf("ConfigMap %s key %s holds a value of a Secret", cm.Name, k)
				}
			}
			if u, err := url.Parse(v); err == nil && u.User != nil {
				if _, has := u.User.Password(); has {
					t.Errorf("ConfigMap %s key %s holds a URL with a password", cm.Name, k)
				}
			}
		}
	}
	// The Secret the Deployment names is the chart's or the existing one.
	for _, name := range secretEnv {
		if v, ok := vars[name]; ok && v.ValueFrom != nil && v.ValueFrom.SecretKeyRef != nil && len(r.Secrets) > 0 {
			if ref := v.ValueFrom.SecretKeyRef; ref.Name != r.Secrets[0].Name || r.Secrets[0].Data[ref.Key] == nil {
				t.Errorf("%s from Secret %s key %s, which the rendered Secret %s does not hold", name, ref.Name, ref.Key, r.Secrets[0].Name)
			}
		}
	}
}

// decodeDeviceKey reads a key as DEVICE_COOKIE_KEY is read (cmd/server's
// decodeKey: hex, or base64 in either alphabet, padded or not).
func decodeDeviceKey(s string) []byte {
	if b, err := hex.DecodeString(s); err == nil {
		return b
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b
		}
	}
	return nil
}

// containerPort is the number of the container's port of that name.
func containerPort(t testing.TB, ctr corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range ctr.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container has no port named %q (ports %+v)", name, ctr.Ports)
	return 0
}

func checkProbes(t *testing.T, r *rendered, ctr corev1.Container, routes map[string]bool) {
	httpPort := containerPort(t, ctr, "http")
	if got, want := configMap(t, r, r.Deployment.Name).Data["ADDR"], fmt.Sprintf(":%d", httpPort); got != want {
		t.Errorf("ADDR=%q, want %q (the container's http port)", got, want)
	}
	for _, p := range []struct {
		kind  string
		probe *corev1.Probe
		path  string // the endpoint meant for it (docs/api.md, "Endpoints")
	}{
		{"readiness", ctr.ReadinessProbe, "/readyz"},
		{"liveness", ctr.LivenessProbe, "/healthz"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no %s httpGet probe", p.kind)
			continue
		}
		get := p.probe.HTTPGet
		if get.Path != p.path {
			t.Errorf("%s probe on %s, want %s", p.kind, get.Path, p.path)
		}
		if !hasGETRoute(routes, get.Path) {
			t.Errorf("%s probe path %s is not a GET route in internal/web/routes.go", p.kind, get.Path)
		}
		if get.Port.String() != "http" && get.Port.IntValue() != int(httpPort) {
			t.Errorf("%s probe on port %s, want the http port", p.kind, get.Port.String())
		}
	}
	if vars := r.ConfigMaps[0].Data; vars["METRICS_ADDR"] != "off" {
		if got, want := vars["METRICS_ADDR"], fmt.Sprintf(":%d", containerPort(t, ctr, "metrics")); got != want {
			t.Errorf("METRICS_ADDR=%q, want %q (the container's metrics port)", got, want)
		}
	}
}

func checkDrain(t *testing.T, r *rendered, ctr corev1.Container, shutdown time.Duration) {
	spec := r.Deployment.Spec.Template.Spec
	raw := configMap(t, r, r.Deployment.Name).Data["SHUTDOWN_DRAIN"]
	drain, err := time.ParseDuration(raw)
	if err != nil {
		t.Fatalf("SHUTDOWN_DRAIN=%q: %v", raw, err)
	}
	if ctr.Lifecycle == nil || ctr.Lifecycle.PreStop == nil || ctr.Lifecycle.PreStop.Sleep == nil {
		t.Fatalf("no preStop sleep action: %+v", ctr.Lifecycle)
	}
	pause := time.Duration(ctr.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	if pause != drain {
		t.Errorf("preStop sleeps %v, SHUTDOWN_DRAIN is %v: want both from shutdownDrain", pause, drain)
	}
	if spec.TerminationGracePeriodSeconds == nil {
		t.Fatal("no terminationGracePeriodSeconds")
	}
	grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	if need := pause + drain + shutdown; grace <= need || grace <= drain {
		t.Errorf("terminationGracePeriodSeconds %v, want more than preStop %v + SHUTDOWN_DRAIN %v + the server's shutdown deadline %v = %v", grace, pause, drain, shutdown, need)
	}
}

// replicas is the fewest pods the Deployment runs: spec.replicas, or the
// autoscaler's minimum.
func replicas(t testing.TB, r *rendered) int32 {
	t.Helper()
	if r.HPA != nil {
		if r.Deployment.Spec.Replicas != nil {
			t.Error("Deployment sets replicas while an HPA scales it: every helm upgrade would undo the autoscaler")
		}
		if r.HPA.Spec.MinReplicas == nil {
			t.Fatal("HPA without minReplicas")
		}
		if ref := r.HPA.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != r.Deployment.Name {
			t.Errorf("HPA scales %s %s, want Deployment %s", ref.Kind, ref.Name, r.Deployment.Name)
		}
		return *r.HPA.Spec.MinReplicas
	}
	if r.Deployment.Spec.Replicas == nil {
		t.Fatal("Deployment without replicas and no HPA")
	}
	return *r.Deployment.Spec.Replicas
}

func checkAvailability(t *testing.T, r *rendered) {
	d := r.Deployment
	podLabels := labels.Set(d.Spec.Template.Labels)
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(podLabels) {
		t.Fatalf("Deployment selector %v does not select its pods %v (%v)", d.Spec.Selector, podLabels, err)
	}
	if s := d.Spec.Strategy; s.Type != appsv1.RollingUpdateDeploymentStrategyType || s.RollingUpdate == nil ||
		s.RollingUpdate.MaxUnavailable == nil || s.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("strategy %+v, want RollingUpdate with maxUnavailable 0", s)
	}
	n := replicas(t, r)
	if n < 2 {
		t.Errorf("%d replicas, want at least 2 beyond one machine", n)
	}
	keys := map[string]bool{}
	for _, c := range d.Spec.Template.Spec.TopologySpreadConstraints {
		keys[c.TopologyKey] = true
		if s, err := metav1.LabelSelectorAsSelector(c.LabelSelector); err != nil || !s.Matches(podLabels) {
			t.Errorf("spread on %s does not select the pods", c.TopologyKey)
		}
	}
	for _, k := range []string{"kubernetes.io/hostname", "topology.kubernetes.io/zone"} {
		if !keys[k] {
			t.Errorf("no topology spread on %s", k)
		}
	}

	pdb := r.PDB
	if pdb == nil {
		t.Fatal("no PodDisruptionBudget: it is on by default")
	}
	if s, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || !s.Matches(podLabels) {
		t.Errorf("PDB selector %v does not select the pods", pdb.Spec.Selector)
	}
	switch {
	case (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil):
		t.Errorf("PDB %+v: want exactly one of minAvailable and maxUnavailable", pdb.Spec)
	case pdb.Spec.MinAvailable != nil:
		if m := int32(pdb.Spec.MinAvailable.IntValue()); m < 1 || m >= n {
			t.Errorf("PDB minAvailable %d with %d replicas: want 1 to %d, so that a drain can evict and a pod stays", m, n, n-1)
		}
	default:
		if m := int32(pdb.Spec.MaxUnavailable.IntValue()); m < 1 || m >= n {
			t.Errorf("PDB maxUnavailable %d with %d replicas: want 1 to %d, so that a drain can evict and a pod stays", m, n, n-1)
		}
	}
}

func checkSecurityContext(t *testing.T, d *appsv1.Deployment) {
	spec := d.Spec.Template.Spec
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("pod securityContext: want runAsNonRoot: true")
	}
	if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Error("pod securityContext: want a non-zero runAsUser")
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod securityContext: want seccompProfile RuntimeDefault")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken: want false, the service never calls the API")
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Error("host namespaces: want none")
	}
	for _, c := range append(spec.InitContainers, spec.Containers...) {
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("container %s: no securityContext", c.Name)
			continue
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("container %s: want readOnlyRootFilesystem: true", c.Name)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("container %s: want allowPrivilegeEscalation: false", c.Name)
		case sc.Privileged != nil && *sc.Privileged:
			t.Errorf("container %s: privileged", c.Name)
		case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
			t.Errorf("container %s: capabilities %+v, want drop [ALL] and none added", c.Name, sc.Capabilities)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("container %s: resources %+v, want cpu and memory requests and a memory limit", c.Name, c.Resources)
		}
	}
}

func checkNetwork(t *testing.T, r *rendered, ctr corev1.Container) {
	podLabels := labels.Set(r.Deployment.Spec.Template.Labels)
	svc := r.Service
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) || len(svc.Spec.Selector) == 0 {
		t.Errorf("Service selector %v does not select the pods", svc.Spec.Selector)
	}
	for _, p := range svc.Spec.Ports {
		containerPort(t, ctr, p.TargetPort.String()) // fails if it names no container port
	}
	np := r.NetworkPolicy
	if np == nil {
		t.Fatal("no NetworkPolicy: it is on by default")
	}
	if s, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector); err != nil || !s.Matches(podLabels) {
		t.Errorf("NetworkPolicy selects %v, not the pods", np.Spec.PodSelector)
	}
	if len(np.Spec.PolicyTypes) != 2 {
		t.Errorf("policyTypes %v, want Ingress and Egress", np.Spec.PolicyTypes)
	}
	for _, rule := range np.Spec.Ingress {
		if len(rule.From) == 0 || len(rule.Ports) == 0 {
			t.Errorf("ingress rule %+v lets everyone in, or on every port", rule)
		}
		for _, p := range rule.Ports {
			if p.Port == nil || (p.Port.String() != "http" && p.Port.String() != "metrics") {
				t.Errorf("ingress to port %v, want only http or metrics", p.Port)
			}
		}
	}
	var dns bool
	for _, rule := range np.Spec.Egress {
		if len(rule.To) == 0 || len(rule.Ports) == 0 {
			t.Errorf("egress rule %+v lets the pods out anywhere, or on every port", rule)
		}
		for _, p := range rule.Ports {
			if p.Port != nil && p.Port.IntValue() == 53 {
				dns = true
			}
		}
	}
	if !dns || len(np.Spec.Egress) < 2 {
		t.Errorf("egress %+v: want Redis and DNS", np.Spec.Egress)
	}
	if hr := r.HTTPRoute; hr != nil {
		if len(hr.Spec.ParentRefs) == 0 {
			t.Error("HTTPRoute attached to no Gateway")
		}
		for _, rule := range hr.Spec.Rules {
			for _, b := range rule.BackendRefs {
				if string(b.Name) != svc.Name || b.Port == nil || int32(*b.Port) != svc.Spec.Ports[0].Port {
					t.Errorf("HTTPRoute backend %s:%v, want Service %s:%d", b.Name, b.Port, svc.Name, svc.Spec.Ports[0].Port)
				}
			}
		}
	}
	for _, sm := range r.Custom["ServiceMonitor"] {
		eps, _ := field(sm, "spec", "endpoints").([]any)
		if len(eps) != 1 || field(eps[0].(map[string]any), "port") != "metrics" {
			t.Errorf("ServiceMonitor endpoints %v, want the Service's metrics port", eps)
		}
	}
}

func checkForwardAuth(t *testing.T, r *rendered, routes map[string]bool, headers []string) {
	svcURL := fmt.Sprintf("http://%s.%s.svc:%d", r.Service.Name, helmNamespace, r.Service.Spec.Ports[0].Port)
	for _, mw := range r.Custom["Middleware"] {
		fa, ok := field(mw, "spec", "forwardAuth").(map[string]any)
		if !ok {
			continue
		}
		addr, _ := fa["address"].(string)
		u, err := url.Parse(addr)
		if err != nil || !strings.HasPrefix(addr, svcURL+"/") {
			t.Errorf("Traefik forwardAuth address %q, want %s/…", addr, svcURL)
			continue
		}
		if !hasGETRoute(routes, u.Path) {
			t.Errorf("Traefik forwardAuth path %s is not a GET route in internal/web/routes.go", u.Path)
		}
		if got := stringList(fa["authResponseHeaders"]); !slices.Equal(got, headers) {
			t.Errorf("Traefik authResponseHeaders %q, want the service's %q", got, headers)
		}
		if fa["trustForwardHeader"] != false {
			t.Error("Traefik trustForwardHeader: want false, so a client cannot name the return target")
		}
	}
	for _, sp := range r.Custom["SecurityPolicy"] {
		if got := stringList(field(sp, "spec", "extAuth", "http", "headersToBackend")); !slices.Equal(got, headers) {
			t.Errorf("SecurityPolicy headersToBackend %q, want the service's %q", got, headers)
		}
		refs, _ := field(sp, "spec", "extAuth", "http", "backendRefs").([]any)
		if len(refs) != 1 || field(refs[0].(map[string]any), "name") != r.Service.Name {
			t.Errorf("SecurityPolicy backendRefs %v, want Service %s", refs, r.Service.Name)
		}
		sent := stringList(field(sp, "spec", "extAuth", "headersToExtAuth"))
		for _, h := range []string{"cookie", "accept"} {
			if !slices.Contains(sent, h) {
				t.Errorf("SecurityPolicy headersToExtAuth %q lacks %s: the service would see no session (cookie) or no browser (accept)", sent, h)
			}
		}
	}
	if cookieStripped := len(r.Custom["Middleware"]) == 3; cookieStripped {
		var chain []string
		for _, mw := range r.Custom["Middleware"] {
			if list, ok := field(mw, "spec", "chain", "middlewares").([]any); ok {
				for _, e := range list {
					chain = append(chain, fmt.Sprint(field(e.(map[string]any), "name")))
				}
			}
		}
		if len(chain) != 2 || !strings.HasSuffix(chain[0], "-forward-auth") || !strings.HasSuffix(chain[1], "-strip-cookie") {
			t.Errorf("Traefik chain %v: want forward auth first (it reads the cookie), then the cookie removal", chain)
		}
	}
}
