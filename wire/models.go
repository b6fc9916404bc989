package wire

import "github.com/sluice-dev/sluice"

// ModelList is the body of GET /v1/models.
type ModelList struct {
	Object string  `json:"object"`
	Data   []Model `json:"data"`
}

// Model is one entry of a ModelList. Description is Sluice's addition.
type Model struct {
	ID          string `json:"id"`
	Object      string `json:"object"`
	Created     int64  `json:"created"`
	OwnedBy     string `json:"owned_by"`
	Description string `json:"description,omitempty"`
}

// Models returns the list body for infos.
func Models(infos []sluice.ModelInfo) ModelList {
	l := ModelList{Object: "list", Data: make([]Model, 0, len(infos))}
	for _, m := range infos {
		l.Data = append(l.Data, Model{ID: m.ID, Object: "model", Created: m.Created, OwnedBy: m.OwnedBy, Description: m.Description})
	}
	return l
}
