package deploy

// Rendering the Helm chart (deploy/helm/loginsvc) with the helm binary that
// scripts/helm-cli.sh builds, and decoding what it renders strictly into
// the Kubernetes API's own Go types: a field the API does not have, or a
// value of the wrong type, is an error here, as the API server would
// refuse it at install time.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

// helmKubeVersion is the oldest Kubernetes the chart claims (Chart.yaml's
// kubeVersion): the preStop sleep action is on by default from 1.30.
const helmKubeVersion = "1.30.0"

// helmNamespace and helmRelease name every rendering, so that names and
// the Service's DNS name are predictable.
const (
	helmNamespace = "auth"
	helmRelease   = "loginsvc"
)

// helmBin is the helm binary scripts/test.sh exports as HELM_BIN. Without it
// the test fails: the chart's checks are part of the test command, never
// skipped.
func helmBin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("HELM_BIN")
	if bin == "" {
		t.Fatal("HELM_BIN is not set: run ./scripts/test.sh, or HELM_BIN=\"$(./scripts/helm-cli.sh)\" go test ./deploy/ -run Helm")
	}
	if _, err := exec.LookPath(bin); err != nil {
		t.Fatalf("HELM_BIN=%s: %v", bin, err)
	}
	return bin
}

// chartDir is the chart's directory.
func chartDir(t testing.TB) string {
	t.Helper()
	return filepath.Join(repoRoot(t), "deploy", "helm", "loginsvc")
}

// runHelm runs helm with its cache, config and data homes in a temporary
// directory, so nothing of the developer's helm setup (repositories,
// plugins) changes the result and nothing is written to $HOME.
func runHelm(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmBin(t), args...)
	cmd.Dir = chartDir(t)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// helmCase is one set of values the chart is rendered with: the defaults,
// each example file, and combinations that switch on what they leave off.
type helmCase struct {
	name string
	args []string // -f and --set arguments
}

// testHelmDeviceKey is a DEVICE_COOKIE_KEY for the cases that set one: base64
// of 32 bytes, test-only.
const testHelmDeviceKey = "aGVsbS10ZXN0LW9ubHktZGV2aWNlLWNvb2tpZS1rZXk="

// testHelmBootstrapPassword is secret.bootstrapPassword in the case that
// sets one, test-only.
const testHelmBootstrapPassword = "helm-test-only-bootstrap-9Xk2"

// helmCases are the defaults, every file in examples/ (there must be the
// three REDIS_URL forms), and two cases that between them switch on every
// template the examples leave off.
func helmCases(t testing.TB) []helmCase {
	t.Helper()
	examples, err := filepath.Glob(filepath.Join(chartDir(t), "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(examples) < 3 {
		t.Fatalf("examples/: %d values files, want at least 3 (standalone, Sentinel, Cluster)", len(examples))
	}
	cases := []helmCase{{name: "defaults"}}
	for _, f := range examples {
		cases = append(cases, helmCase{name: "examples/" + filepath.Base(f), args: []string{"-f", f}})
	}
	cases = append(cases,
		helmCase{name: "every forward auth, bootstrap user, given key", args: []string{
			"-f", filepath.Join(chartDir(t), "examples", "redis-sentinel.yaml"),
			"--set", "forwardAuth.traefik.enabled=true",
			"--set", "forwardAuth.stripCookieHeader=true",
			"--set", "forwardAuth.envoyGateway.enabled=true",
			"--set", "forwardAuth.envoyGateway.targetRouteNames={app,wiki}",
			"--set", "metrics.serviceMonitor.enabled=true",
			"--set", "env.BOOTSTRAP_USER=admin",
			"--set", "secret.bootstrapPassword=" + testHelmBootstrapPassword,
			"--set", "secret.deviceCookieKey=" + testHelmDeviceKey,
			"--set", "shutdownDrain=12",
		}},
		helmCase{name: "existing secret, no metrics, minAvailable, 2 replicas", args: []string{
			"--set", "existingSecret=loginsvc-by-hand",
			"--set", "env.BOOTSTRAP_USER=admin",
			"--set", "metrics.enabled=false",
			"--set", "podDisruptionBudget.minAvailable=1",
			"--set", "podDisruptionBudget.maxUnavailable=null",
			"--set", "replicaCount=2",
			"--set", "shutdownDrain=0",
		}},
	)
	return cases
}

// rendered is what one `helm template` produced, decoded.
type rendered struct {
	Deployment     *appsv1.Deployment
	Service        *corev1.Service
	ServiceAccount *corev1.ServiceAccount
	ConfigMaps     []*corev1.ConfigMap
	Secrets        []*corev1.Secret
	PDB            *policyv1.PodDisruptionBudget
	HPA            *autoscalingv2.HorizontalPodAutoscaler
	NetworkPolicy  *networkingv1.NetworkPolicy
	Ingress        *networkingv1.Ingress
	HTTPRoute      *gwv1.HTTPRoute
	// Custom resources whose Go types this module does not import
	// (Prometheus Operator, Traefik, Envoy Gateway), by kind.
	Custom map[string][]map[string]any
}

// render runs `helm template` and decodes every object strictly.
func render(t testing.TB, c helmCase) *rendered {
	t.Helper()
	args := append([]string{"template", helmRelease, ".", "--namespace", helmNamespace, "--kube-version", helmKubeVersion}, c.args...)
	out, errOut, err := runHelm(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	r, err := decodeManifests(out)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	return r
}

// decodeManifests decodes a multi-document YAML stream of Kubernetes
// objects, each strictly into its type (customResource for the kinds this
// module has no types for). A kind it does not know is an error, so a new
// template cannot go unchecked.
func decodeManifests(stream string) (*rendered, error) {
	r := &rendered{Custom: map[string][]map[string]any{}}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(stream)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read YAML: %w", err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		// Strict: a key given twice is an error, as kubectl would say.
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("YAML to JSON: %w\n%s", err, doc)
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			return nil, fmt.Errorf("apiVersion/kind: %w\n%s", err, doc)
		}
		gvk := tm.APIVersion + "/" + tm.Kind
		var obj any
		switch gvk {
		case "apps/v1/Deployment":
			r.Deployment, err = one(r.Deployment, gvk)
			obj = r.Deployment
		case "v1/Service":
			r.Service, err = one(r.Service, gvk)
			obj = r.Service
		case "v1/ServiceAccount":
			r.ServiceAccount, err = one(r.ServiceAccount, gvk)
			obj = r.ServiceAccount
		case "v1/ConfigMap":
			cm := &corev1.ConfigMap{}
			r.ConfigMaps = append(r.ConfigMaps, cm)
			obj = cm
		case "v1/Secret":
			s := &corev1.Secret{}
			r.Secrets = append(r.Secrets, s)
			obj = s
		case "policy/v1/PodDisruptionBudget":
			r.PDB, err = one(r.PDB, gvk)
			obj = r.PDB
		case "autoscaling/v2/HorizontalPodAutoscaler":
			r.HPA, err = one(r.HPA, gvk)
			obj = r.HPA
		case "networking.k8s.io/v1/NetworkPolicy":
			r.NetworkPolicy, err = one(r.NetworkPolicy, gvk)
			obj = r.NetworkPolicy
		case "networking.k8s.io/v1/Ingress":
			r.Ingress, err = one(r.Ingress, gvk)
			obj = r.Ingress
		case "gateway.networking.k8s.io/v1/HTTPRoute":
			r.HTTPRoute, err = one(r.HTTPRoute, gvk)
			obj = r.HTTPRoute
		case "monitoring.coreos.com/v1/ServiceMonitor",
			"traefik.io/v1alpha1/Middleware",
			"gateway.envoyproxy.io/v1alpha1/SecurityPolicy":
			m, cerr := customResource(js)
			if cerr != nil {
				return nil, fmt.Errorf("%s: %w\n%s", gvk, cerr, doc)
			}
			r.Custom[tm.Kind] = append(r.Custom[tm.Kind], m)
			continue
		default:
			return nil, fmt.Errorf("rendered %s, which this test does not know: add its type to decodeManifests\n%s", gvk, doc)
		}
		if err != nil {
			return nil, err
		}
		if err := decodeStrict(js, obj); err != nil {
			return nil, fmt.Errorf("%s: %w\n%s", gvk, err, doc)
		}
	}
	return r, nil
}

// one allocates the single object of a kind the chart renders at most once.
func one[T any](have *T, gvk string) (*T, error) {
	if have != nil {
		return nil, fmt.Errorf("rendered two %s, want at most one", gvk)
	}
	return new(T), nil
}

// decodeStrict decodes JSON into v, refusing unknown fields and trailing data.
func decodeStrict(js []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the object")
	}
	return nil
}

// customResource decodes a custom resource as a map, with its metadata
// strictly into ObjectMeta and nothing at the top level but apiVersion,
// kind, metadata and spec.
func customResource(js []byte) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, err
	}
	for k := range m {
		if !slices.Contains([]string{"apiVersion", "kind", "metadata", "spec"}, k) {
			return nil, fmt.Errorf("top-level field %q: want only apiVersion, kind, metadata, spec", k)
		}
	}
	var top struct {
		Metadata json.RawMessage `json:"metadata"`
	}
	if err := json.Unmarshal(js, &top); err != nil {
		return nil, err
	}
	var meta metav1.ObjectMeta
	if err := decodeStrict(top.Metadata, &meta); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if meta.Name == "" {
		return nil, errors.New("no metadata.name")
	}
	return m, nil
}

// stripComments drops YAML comment lines, so that a document holding only
// helm's "# Source:" line counts as empty.
func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] == '#' {
			continue
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// field walks a decoded custom resource: field(m, "spec", "forwardAuth",
// "address"). Missing keys give nil.
func field(m map[string]any, keys ...string) any {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

// stringList is a decoded []any of strings as []string; nil if it is not one.
func stringList(v any) []string {
	list, ok := v.([]any)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil
		}
		out = append(out, s)
	}
	return out
}
