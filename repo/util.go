package repo

import (
	"crypto/rand"
	"encoding/json"
)

func randRead(b []byte) (int, error) { return rand.Read(b) }

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
