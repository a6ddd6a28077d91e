package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// ask marshals req, runs it through handle, and decodes the answer into a map.
func ask(t *testing.T, req map[string]any) map[string]any {
	t.Helper()
	line, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(handle(line))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

const metadataPolicy = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n"

func TestLoad(t *testing.T) {
	if got := ask(t, map[string]any{"op": "load", "policy": metadataPolicy}); got["ok"] != true {
		t.Fatalf("load metadata policy: %v", got)
	}
	got := ask(t, map[string]any{"op": "load", "policy": "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n"})
	if got["ok"] != false || !strings.Contains(got["error"].(string), "0 rules") {
		t.Fatalf("empty rules should fail to load: %v", got)
	}
}

func TestEval(t *testing.T) {
	pods := map[string]any{
		"user": map[string]any{"name": "alice", "groups": []string{"g1"}}, "verb": "get",
		"namespace": "ns", "apiGroup": "", "apiVersion": "v1", "resource": "pods", "subresource": "",
		"name": "x", "resourceRequest": true, "path": "/api/v1/namespaces/ns/pods/x",
	}
	got := ask(t, map[string]any{"op": "eval", "policy": metadataPolicy, "requests": []any{pods}})
	res := got["results"].([]any)[0].(map[string]any)
	if res["level"] != "Metadata" || res["omitManagedFields"] != false {
		t.Fatalf("metadata policy: %v", got)
	}
	if stages, ok := res["omitStages"].([]any); !ok || len(stages) != 0 {
		t.Fatalf("omitStages should be an empty array: %v", got)
	}

	// "pods/*" matches the bare resource too (resource == TrimSuffix(res, "/*")).
	wild := "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [ResponseStarted, RequestReceived]\n" +
		"rules:\n- level: Request\n  resources: [{group: \"\", resources: [\"pods/*\"]}]\n"
	got = ask(t, map[string]any{"op": "eval", "policy": wild, "requests": []any{pods, map[string]any{
		"user": nil, "verb": "get", "apiVersion": "v1", "resource": "secrets", "resourceRequest": true,
	}}})
	rs := got["results"].([]any)
	if r := rs[0].(map[string]any); r["level"] != "Request" ||
		strings.Join(toStrings(r["omitStages"]), ",") != "RequestReceived,ResponseStarted" {
		t.Fatalf("pods/* vs pods: %v", got)
	}
	if r := rs[1].(map[string]any); r["level"] != "None" {
		t.Fatalf("secrets should fall through to None: %v", got)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, s := range v.([]any) {
		out = append(out, s.(string))
	}
	return out
}

func TestRequestInfo(t *testing.T) {
	for _, tc := range []struct {
		method, uri                   string
		verb, resource, sub, name, ns string
	}{
		{"GET", "/api/v1/namespaces/ns/pods/p/log", "get", "pods", "log", "p", "ns"},
		{"GET", "/api/v1/pods?watch=true", "watch", "pods", "", "", ""},
		{"GET", "/apis/apps/v1/namespaces/ns/deployments?fieldSelector=metadata.name%3Dfoo", "list", "deployments", "", "foo", "ns"},
	} {
		got := ask(t, map[string]any{"op": "requestinfo", "method": tc.method, "uri": tc.uri})
		if got["ok"] != true || got["isResourceRequest"] != true || got["verb"] != tc.verb ||
			got["resource"] != tc.resource || got["subresource"] != tc.sub || got["name"] != tc.name ||
			got["namespace"] != tc.ns {
			t.Errorf("%s %s: %v", tc.method, tc.uri, got)
		}
	}
	// Non-resource requests still carry an (empty) parts array.
	got := ask(t, map[string]any{"op": "requestinfo", "method": "GET", "uri": "/healthz"})
	if p, ok := got["parts"].([]any); got["isResourceRequest"] != false || !ok || len(p) != 0 {
		t.Errorf("/healthz: %v", got)
	}
}

func TestRunProtocol(t *testing.T) {
	in := "not json\n" +
		`{"op":"load","policy":"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n"}` + "\n" +
		`{"op":"nope"}` + "\r\n" +
		`{"op":"requestinfo","method":"GET","uri":"/api"}` // no trailing newline
	var out bytes.Buffer
	if err := run(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("want 4 output lines, got %d: %q", len(lines), out.String())
	}
	for i, prefix := range []string{`{"ok":false,"error":"bad input: `, `{"ok":true}`, `{"ok":false,"error":"bad input: unknown op`, `{"ok":true,"isResourceRequest":false`} {
		if !strings.HasPrefix(lines[i], prefix) {
			t.Errorf("line %d = %s, want prefix %s", i, lines[i], prefix)
		}
	}
}

func TestStrictInputKeys(t *testing.T) {
	for _, line := range []string{
		`{"op":"eval","policy":"x","requests":[{"apigroup":"apps"}]}`, // wrong case
		`{"op":"eval","policy":"x","requests":[{"user":{"Name":"a"}}]}`,
		`{"op":"load","policy":"x","extra":1}`,
		`{"op":"load","policy":"x"} {"op":"load"}`,
		`null`,
		`{"op":"eval","policy":"x","requests":[null]}`,
	} {
		got, _ := json.Marshal(handle([]byte(line)))
		if !strings.HasPrefix(string(got), `{"ok":false,"error":"bad input: `) {
			t.Errorf("%s -> %s, want bad input", line, got)
		}
	}
}
