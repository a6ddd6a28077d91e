// Command k8s-webhook-client sends audit events to a webhook through kube-apiserver's own audit
// webhook backend: k8s.io/apiserver/plugin/pkg/audit/webhook (configured from a kubeconfig,
// exactly as --audit-webhook-config-file is), wrapped, in batch mode, in
// k8s.io/apiserver/plugin/pkg/audit/buffered with the apiserver's batch settings. It is how
// Vigil's tests and benchmarks check `vigil serve` against the real client: same EventList
// encoding, same TLS and client-certificate handling, same retry-on-any-error behaviour.
//
// Usage:
//
//	k8s-webhook-client -kubeconfig FILE -events N [-mode batch|blocking] [-prefix ID]
//	    [-batch-max-size 400] [-batch-max-wait 30s] [-throttle-qps 10] [-throttle-burst 15]
//	    [-buffer-size 10000] [-initial-backoff 10s] [-object-bytes 0] [-rate 0]
//
// Event i gets auditID PREFIX-%08d and stage ResponseComplete. At the end it prints one JSON
// line: {"sent":N,"failed":F,"seconds":S}; failed counts events the backend gave up on (in
// blocking mode per event; in batch mode from the plugin errors counted by the apiserver's
// audit metrics). Exit 1 when any failed.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/apiserver/pkg/audit"
	"k8s.io/apiserver/plugin/pkg/audit/buffered"
	"k8s.io/apiserver/plugin/pkg/audit/webhook"
	"k8s.io/component-base/metrics/legacyregistry"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "webhook kubeconfig (as --audit-webhook-config-file)")
	events := flag.Int("events", 100, "events to send")
	mode := flag.String("mode", "batch", "batch or blocking (as --audit-webhook-mode)")
	prefix := flag.String("prefix", "interop", "auditID prefix")
	bufferSize := flag.Int("buffer-size", 10000, "--audit-webhook-batch-buffer-size")
	maxSize := flag.Int("batch-max-size", 400, "--audit-webhook-batch-max-size")
	maxWait := flag.Duration("batch-max-wait", 30*time.Second, "--audit-webhook-batch-max-wait")
	throttle := flag.Bool("throttle", true, "--audit-webhook-batch-throttle-enable")
	qps := flag.Float64("throttle-qps", 10, "--audit-webhook-batch-throttle-qps")
	burst := flag.Int("throttle-burst", 15, "--audit-webhook-batch-throttle-burst")
	backoff := flag.Duration("initial-backoff", webhook.DefaultInitialBackoffDelay, "--audit-webhook-initial-backoff")
	objectBytes := flag.Int("object-bytes", 0, "size of a requestObject to attach (0: none)")
	rate := flag.Float64("rate", 0, "events per second to offer (0: as fast as the buffer takes them)")
	flag.Parse()
	if *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "k8s-webhook-client: -kubeconfig is required")
		os.Exit(2)
	}

	// The apiserver's retry schedule (pkg/server/options/audit.go): factor 1.5, jitter 0.2, 5 steps.
	retry := wait.Backoff{Duration: *backoff, Factor: 1.5, Jitter: 0.2, Steps: 5}
	hook, err := webhook.NewBackend(*kubeconfig, auditv1.SchemeGroupVersion, retry, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "k8s-webhook-client: %v\n", err)
		os.Exit(2)
	}
	var backend audit.Backend
	switch *mode {
	case "batch":
		backend = buffered.NewBackend(hook, buffered.BatchConfig{
			BufferSize:     *bufferSize,
			MaxBatchSize:   *maxSize,
			MaxBatchWait:   *maxWait,
			ThrottleEnable: *throttle,
			ThrottleQPS:    float32(*qps),
			ThrottleBurst:  *burst,
			AsyncDelegate:  true,
		})
	case "blocking":
		backend = hook
	default:
		fmt.Fprintf(os.Stderr, "k8s-webhook-client: unknown -mode %q\n", *mode)
		os.Exit(2)
	}
	stop := make(chan struct{})
	if err := backend.Run(stop); err != nil {
		fmt.Fprintf(os.Stderr, "k8s-webhook-client: %v\n", err)
		os.Exit(2)
	}

	var object *runtime.Unknown
	if *objectBytes > 0 {
		pad := strings.Repeat("x", *objectBytes)
		object = &runtime.Unknown{
			Raw:         []byte(fmt.Sprintf(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm","namespace":"default"},"data":{"pad":%q}}`, pad)),
			ContentType: runtime.ContentTypeJSON,
		}
	}
	start := time.Now()
	failed := 0
	for i := 0; i < *events; i++ {
		if *rate > 0 {
			due := start.Add(time.Duration(float64(i) / *rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		now := metav1.NewMicroTime(time.Now())
		level := auditinternal.LevelMetadata
		if object != nil {
			level = auditinternal.LevelRequest
		}
		ev := &auditinternal.Event{
			Level:      level,
			AuditID:    types.UID(fmt.Sprintf("%s-%08d", *prefix, i)),
			Stage:      auditinternal.StageResponseComplete,
			RequestURI: "/api/v1/namespaces/default/configmaps",
			Verb:       "create",
			User: authnv1.UserInfo{
				Username: "system:serviceaccount:default:interop",
				Groups:   []string{"system:serviceaccounts", "system:authenticated"},
			},
			SourceIPs:                []string{"127.0.0.1"},
			UserAgent:                "k8s-webhook-client/v0.37.2",
			ObjectRef:                &auditinternal.ObjectReference{Resource: "configmaps", Namespace: "default", Name: "cm", APIVersion: "v1"},
			ResponseStatus:           &metav1.Status{Code: 201},
			RequestObject:            object,
			RequestReceivedTimestamp: now,
			StageTimestamp:           now,
		}
		if !backend.ProcessEvents(ev) {
			failed++
		}
	}
	// Flush: the buffered backend sends what it holds and waits for every batch in flight.
	close(stop)
	backend.Shutdown()
	failed += pluginErrors()
	secs := time.Since(start).Seconds()
	out, _ := json.Marshal(map[string]any{"sent": *events, "failed": failed, "seconds": secs})
	fmt.Println(string(out))
	if failed > 0 {
		os.Exit(1)
	}
}

// pluginErrors reads apiserver_audit_error_total (events the buffered or webhook plugin gave up
// on) from the registry the apiserver's audit package reports to.
func pluginErrors() int {
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		return 0
	}
	n := 0
	for _, f := range families {
		if f.GetName() != "apiserver_audit_error_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			n += int(m.GetCounter().GetValue())
		}
	}
	return n
}
