package server

import (
	"bytes"
	"encoding/json"
)

// mergePatch applies an RFC 7396 JSON merge patch to the session data cur
// (a JSON object or nil) and returns the new data, which must again be a
// JSON object (or null, for no data). Numbers keep their exact text.
func mergePatch(cur, patch json.RawMessage) (json.RawMessage, error) {
	var p any
	if err := decodeNumbers(patch, &p); err != nil {
		return nil, badRequest("data must be a JSON merge patch (a JSON object)")
	}
	var target any
	if len(bytes.TrimSpace(cur)) > 0 {
		if err := decodeNumbers(cur, &target); err != nil {
			return nil, err
		}
	}
	out := mergeValue(target, p)
	if out == nil {
		return nil, nil
	}
	if _, ok := out.(map[string]any); !ok {
		return nil, badRequest("data must stay a JSON object: the merge patch must be an object")
	}
	return json.Marshal(out)
}

func mergeValue(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
			continue
		}
		tm[k] = mergeValue(tm[k], v)
	}
	return tm
}

func decodeNumbers(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}
