package admit

import (
	"sort"
	"sync"

	"github.com/sluice-dev/sluice"
)

// Models is the table of models clients may ask for, by name. It is safe
// for concurrent use; the zero value is an empty table.
type Models struct {
	mu     sync.RWMutex
	byName map[string]modelEntry
}

type modelEntry struct {
	info  sluice.ModelInfo
	model sluice.Model
}

// Add makes m available under info.ID, replacing any model of that name.
func (t *Models) Add(info sluice.ModelInfo, m sluice.Model) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byName == nil {
		t.byName = make(map[string]modelEntry)
	}
	t.byName[info.ID] = modelEntry{info, m}
}

// Lookup returns the model called name, or a model_not_found error.
func (t *Models) Lookup(name string) (sluice.Model, error) {
	e, err := t.entry(name)
	return e.model, err
}

// Info returns the description of the model called name, or a
// model_not_found error.
func (t *Models) Info(name string) (sluice.ModelInfo, error) {
	e, err := t.entry(name)
	return e.info, err
}

func (t *Models) entry(name string) (modelEntry, error) {
	t.mu.RLock()
	e, ok := t.byName[name]
	t.mu.RUnlock()
	if !ok {
		return e, &sluice.Error{Code: sluice.ENOTFOUND, Param: "model", Kind: "model_not_found",
			Message: "The model '" + name + "' does not exist. GET /v1/models lists the models this server offers."}
	}
	return e, nil
}

// List returns the models' descriptions, sorted by name.
func (t *Models) List() []sluice.ModelInfo {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]sluice.ModelInfo, 0, len(t.byName))
	for _, e := range t.byName {
		out = append(out, e.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
