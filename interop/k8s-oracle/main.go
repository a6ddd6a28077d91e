// Command k8s-oracle is a differential-test oracle for Vigil's Rust
// re-implementation of Kubernetes audit-policy semantics. It answers JSON-line
// queries using the real k8s.io/apiserver libraries:
//
//   - audit policy loading     (k8s.io/apiserver/pkg/audit/policy.LoadPolicyFromBytes)
//   - audit policy evaluation  (policy.NewPolicyRuleEvaluator / EvaluatePolicyRule)
//   - request-info parsing     (k8s.io/apiserver/pkg/endpoints/request.RequestInfoFactory)
//
// One JSON object per input line on stdin, exactly one JSON object per line on
// stdout (flushed after every line). See README.md for the protocol.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/audit/policy"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/endpoints/request"
)

// ---- input ----

type input struct {
	Op string `json:"op"`

	// load / eval
	Policy   *string       `json:"policy,omitempty"`
	Requests []evalRequest `json:"requests,omitempty"`

	// requestinfo
	Method *string `json:"method,omitempty"`
	URI    *string `json:"uri,omitempty"`
}

type evalUser struct {
	Name   string   `json:"name"`
	Groups []string `json:"groups"`
}

type evalRequest struct {
	User            *evalUser `json:"user"` // null or absent => no user (nil user.Info)
	Verb            string    `json:"verb"`
	Namespace       string    `json:"namespace"`
	APIGroup        string    `json:"apiGroup"`
	APIVersion      string    `json:"apiVersion"`
	Resource        string    `json:"resource"`
	Subresource     string    `json:"subresource"`
	Name            string    `json:"name"`
	ResourceRequest bool      `json:"resourceRequest"`
	Path            string    `json:"path"`
}

// ---- output ----

type errorResponse struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

type okResponse struct {
	OK bool `json:"ok"`
}

type evalResult struct {
	Level             string   `json:"level"`
	OmitStages        []string `json:"omitStages"`
	OmitManagedFields bool     `json:"omitManagedFields"`
}

type evalResponse struct {
	OK      bool         `json:"ok"`
	Results []evalResult `json:"results"`
}

type requestInfoResponse struct {
	OK                bool     `json:"ok"`
	IsResourceRequest bool     `json:"isResourceRequest"`
	Path              string   `json:"path"`
	Verb              string   `json:"verb"`
	APIPrefix         string   `json:"apiPrefix"`
	APIGroup          string   `json:"apiGroup"`
	APIVersion        string   `json:"apiVersion"`
	Namespace         string   `json:"namespace"`
	Resource          string   `json:"resource"`
	Subresource       string   `json:"subresource"`
	Name              string   `json:"name"`
	Parts             []string `json:"parts"`
}

func fail(err error) errorResponse { return errorResponse{OK: false, Error: err.Error()} }

func badInput(format string, args ...any) errorResponse {
	return errorResponse{OK: false, Error: "bad input: " + fmt.Sprintf(format, args...)}
}

// requestInfoFactory mirrors the apiserver's default configuration
// (see k8s.io/apiserver/pkg/server.NewRequestInfoResolver).
var requestInfoFactory = &request.RequestInfoFactory{
	APIPrefixes:          sets.NewString("api", "apis"),
	GrouplessAPIPrefixes: sets.NewString("api"),
}

var (
	inputKeys   = []string{"op", "policy", "requests", "method", "uri"}
	requestKeys = []string{"user", "verb", "namespace", "apiGroup", "apiVersion", "resource", "subresource", "name", "resourceRequest", "path"}
	userKeys    = []string{"name", "groups"}
)

// objectKeys decodes raw as a JSON object and fails on any key not in allowed
// (compared case-sensitively). A JSON null yields a nil map and no error.
func objectKeys(raw []byte, what string, allowed []string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: %v", what, err)
	}
	for k := range m {
		if !slices.Contains(allowed, k) {
			return nil, fmt.Errorf("%s: unknown field %q", what, k)
		}
	}
	return m, nil
}

func checkInputKeys(line []byte) error {
	top, err := objectKeys(line, "input", inputKeys)
	if err != nil {
		return err
	}
	if top == nil {
		return errors.New("input: expected a JSON object, got null")
	}
	rawReqs, ok := top["requests"]
	if !ok {
		return nil
	}
	var reqs []json.RawMessage
	if err := json.Unmarshal(rawReqs, &reqs); err != nil {
		return fmt.Errorf("requests: %v", err)
	}
	for i, raw := range reqs {
		what := fmt.Sprintf("requests[%d]", i)
		r, err := objectKeys(raw, what, requestKeys)
		if err != nil {
			return err
		}
		if r == nil {
			return fmt.Errorf("%s: expected a JSON object, got null", what)
		}
		if u, ok := r["user"]; ok {
			if _, err := objectKeys(u, what+".user", userKeys); err != nil {
				return err
			}
		}
	}
	return nil
}

// handle processes one input line and returns the value to be encoded as the
// single output line.
func handle(line []byte) any {
	// Unknown (or wrongly-cased) fields are rejected so that a typo in the
	// driver (e.g. "apigroup") is reported instead of silently evaluating with
	// a zero value. encoding/json matches field names case-insensitively, so
	// keys are checked for an exact match first.
	if err := checkInputKeys(line); err != nil {
		return badInput("%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var in input
	if err := dec.Decode(&in); err != nil {
		return badInput("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badInput("trailing data after JSON object")
	}

	switch in.Op {
	case "load":
		if in.Policy == nil {
			return badInput(`op "load" requires "policy"`)
		}
		if _, err := policy.LoadPolicyFromBytes([]byte(*in.Policy)); err != nil {
			return fail(err)
		}
		return okResponse{OK: true}

	case "eval":
		if in.Policy == nil {
			return badInput(`op "eval" requires "policy"`)
		}
		p, err := policy.LoadPolicyFromBytes([]byte(*in.Policy))
		if err != nil {
			return fail(err)
		}
		ev := policy.NewPolicyRuleEvaluator(p)
		results := make([]evalResult, 0, len(in.Requests))
		for _, r := range in.Requests {
			attrs := authorizer.AttributesRecord{
				Verb:            r.Verb,
				Namespace:       r.Namespace,
				APIGroup:        r.APIGroup,
				APIVersion:      r.APIVersion,
				Resource:        r.Resource,
				Subresource:     r.Subresource,
				Name:            r.Name,
				ResourceRequest: r.ResourceRequest,
				Path:            r.Path,
			}
			// Leave attrs.User as an untyped nil interface when no user is given;
			// a typed nil (*user.DefaultInfo)(nil) would not compare equal to nil.
			if r.User != nil {
				attrs.User = &user.DefaultInfo{Name: r.User.Name, Groups: r.User.Groups}
			}
			cfg := ev.EvaluatePolicyRule(attrs)
			stages := make([]string, 0, len(cfg.OmitStages))
			for _, s := range cfg.OmitStages {
				stages = append(stages, string(s))
			}
			sort.Strings(stages)
			results = append(results, evalResult{
				Level:             string(cfg.Level),
				OmitStages:        stages,
				OmitManagedFields: cfg.OmitManagedFields,
			})
		}
		return evalResponse{OK: true, Results: results}

	case "requestinfo":
		if in.Method == nil || in.URI == nil {
			return badInput(`op "requestinfo" requires "method" and "uri"`)
		}
		// Parse the URI the way net/http's server parses a request line's
		// request-target, so URL.Path is the decoded path the apiserver sees.
		u, err := url.ParseRequestURI(*in.URI)
		if err != nil {
			return badInput("uri: %v", err)
		}
		req := &http.Request{
			Method:     *in.Method,
			URL:        u,
			RequestURI: *in.URI,
			Proto:      "HTTP/1.1",
			ProtoMajor: 1,
			ProtoMinor: 1,
			Header:     http.Header{},
			Host:       "localhost",
		}
		info, err := requestInfoFactory.NewRequestInfo(req)
		if err != nil {
			return fail(err)
		}
		parts := info.Parts
		if parts == nil {
			parts = []string{}
		}
		return requestInfoResponse{
			OK:                true,
			IsResourceRequest: info.IsResourceRequest,
			Path:              info.Path,
			Verb:              info.Verb,
			APIPrefix:         info.APIPrefix,
			APIGroup:          info.APIGroup,
			APIVersion:        info.APIVersion,
			Namespace:         info.Namespace,
			Resource:          info.Resource,
			Subresource:       info.Subresource,
			Name:              info.Name,
			Parts:             parts,
		}

	case "":
		return badInput(`missing "op"`)
	default:
		return badInput("unknown op %q", in.Op)
	}
}

// run reads JSON lines from r and writes one JSON line per input line to w,
// flushing after each line.
func run(r io.Reader, w io.Writer) error {
	br := bufio.NewReaderSize(r, 1<<16)
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw) // Encode appends '\n'
	enc.SetEscapeHTML(false)
	for {
		line, readErr := br.ReadBytes('\n')
		if len(line) > 0 {
			line = bytes.TrimSuffix(line, []byte("\n"))
			line = bytes.TrimSuffix(line, []byte("\r"))
			if err := enc.Encode(handle(line)); err != nil {
				return err
			}
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		if readErr != nil {
			if errors.Is(readErr, io.EOF) {
				return nil
			}
			return readErr
		}
	}
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "k8s-oracle:", err)
		os.Exit(1)
	}
}
