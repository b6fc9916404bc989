// Package js is the home of Sluice's JavaScript client, the npm package
// @sluice-dev/client of this folder, and hands its source to the Go side:
// web serves Source to the chat page, which imports these very files.
//
// The source lives here, not under web/static, because this folder is the
// package that `npm install ./clients/js` installs and `npm publish`
// ships: npm takes nothing from outside it. go:embed cannot reach outside
// its own package's folder either, and follows no symbolic link; so this
// Go file, in the package's folder, is how one copy of the source serves
// both. The client is plain ES modules with no build step, so what the
// page loads is byte for byte what npm installs.
package js

import (
	"embed"
	"io/fs"
)

//go:embed src/*.js
var src embed.FS

// Source holds the client's ES modules (index.js and those it imports),
// at its root.
var Source fs.FS = mustSub(src, "src")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // cannot happen: dir is a constant, embedded above
	}
	return sub
}
