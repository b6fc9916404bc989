package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a PostgreSQL server run for tests: a cluster made with
// initdb (trust authentication, UTF8; once per test binary, and copied for
// each server) in a temporary directory, listening on a free 127.0.0.1
// port, with its socket in that directory. Tests get a database of their
// own on it with NewDatabase.
//
// The server runs as a child of the test binary (postgres itself, not a
// daemon behind pg_ctl), so that the test owns the process: it can stop it
// at once, wait for it, and the kernel stops it (SIGQUIT, PostgreSQL's
// immediate shutdown) if the test binary dies without cleaning up.
// PostgreSQL refuses to run as root: as root, initdb and the server run as
// the "postgres" user that Debian's package creates.
type Postgres struct {
	Addr string // 127.0.0.1:port

	dir  string // data/ and the socket
	bin  string // the directory of initdb and postgres
	cred *syscall.Credential

	mu   sync.Mutex
	proc *pgProc
}

var (
	sharedPG    *Postgres
	sharedPGErr error
	sharedPGMu  sync.Mutex
	pgDatabases atomic.Int64

	// The cluster that initdb made, which each server copies: initdb
	// takes seconds (ten on a loaded machine), a copy a fraction of that.
	templateOnce sync.Once
	templateDir  string // holds data/
	templateErr  error
)

// pgTemplate returns the data directory of a cluster made by initdb for
// servers like p to copy, making it on the first call. StopPostgres
// removes it.
func pgTemplate(p *Postgres) (string, error) {
	templateOnce.Do(func() {
		tp := &Postgres{bin: p.bin, cred: p.cred}
		if tp.dir, templateErr = tp.makeDir(); templateErr != nil {
			return
		}
		// --no-sync: a test cluster need not survive a power cut, and
		// fsync would make initdb several times slower. C.UTF-8 gives
		// Unicode case folding without depending on which locales are
		// installed.
		initdb := tp.command("initdb", "-D", tp.dataDir(), "-U", "postgres", "--auth=trust",
			"--encoding=UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions")
		if out, err := initdb.CombinedOutput(); err != nil {
			os.RemoveAll(tp.dir)
			templateErr = fmt.Errorf("initdb: %v\n%s", err, out)
			return
		}
		templateDir = tp.dir
	})
	return filepath.Join(templateDir, "data"), templateErr
}

// makeDir makes a temporary directory that the server's user owns. Not
// t.TempDir: its parents are root's alone (mode 0700), which the postgres
// user could not enter.
func (p *Postgres) makeDir() (string, error) {
	dir, err := os.MkdirTemp("", "sluice-pg-")
	if err != nil {
		return "", err
	}
	if p.cred != nil {
		if err := os.Chown(dir, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

// StartPostgres returns the URL of a new, empty database for t on the test
// binary's PostgreSQL server, which the first call starts and
// RunWithoutLeaks (or StopPostgres) stops. One server for a whole package
// keeps tests fast (initdb takes a second or more); a database each keeps
// them apart.
func StartPostgres(t testing.TB) string {
	t.Helper()
	sharedPGMu.Lock()
	if sharedPG == nil && sharedPGErr == nil {
		sharedPG, sharedPGErr = newPostgres()
	}
	p, err := sharedPG, sharedPGErr
	sharedPGMu.Unlock()
	if err != nil {
		t.Fatalf("starting PostgreSQL: %v", err)
	}
	return p.NewDatabase(t)
}

// StopPostgres stops the server StartPostgres started, if any, and
// removes the cluster that servers copy. TestMain calls it through
// RunWithoutLeaks, after every test (and its servers) has ended.
func StopPostgres() {
	sharedPGMu.Lock()
	defer sharedPGMu.Unlock()
	if sharedPG != nil {
		sharedPG.close()
		sharedPG = nil
	}
	if templateDir != "" {
		os.RemoveAll(templateDir)
	}
}

// StartPostgresServer starts a PostgreSQL server of t's own, for tests that
// stop and restart it; it is stopped and removed when t ends.
func StartPostgresServer(t testing.TB) *Postgres {
	t.Helper()
	p, err := newPostgres()
	if err != nil {
		t.Fatalf("starting PostgreSQL: %v", err)
	}
	t.Cleanup(p.close)
	return p
}

// NewDatabase creates an empty database and returns its URL, as
// --database-url takes it. The database is dropped when t ends (a server
// shared by a package's tests would otherwise hold them all until the
// end), once the cleanups registered after this call have closed what
// used it.
func (p *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test_%d", pgDatabases.Add(1))
	if err := p.admin("CREATE DATABASE " + name); err != nil {
		t.Fatalf("creating database %s on %s: %v", name, p.Addr, err)
	}
	t.Cleanup(func() {
		// A server stopped by the test has nothing to drop; FORCE cuts
		// connections that a test left open.
		p.mu.Lock()
		running := p.proc != nil
		p.mu.Unlock()
		if running {
			if err := p.admin("DROP DATABASE " + name + " WITH (FORCE)"); err != nil {
				t.Errorf("dropping database %s: %v", name, err)
			}
		}
	})
	return p.url(name)
}

// admin runs a statement on the server's postgres database.
func (p *Postgres) admin(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.url("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func (p *Postgres) url(db string) string {
	return "postgres://postgres@" + p.Addr + "/" + db + "?sslmode=disable"
}

// Stop stops the server at once (PostgreSQL's immediate shutdown, as
// `pg_ctl stop -m immediate` does: no checkpoint, connections cut), as a
// crash would, and returns when it has exited. Its data stay for Restart.
func (p *Postgres) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil {
		p.proc.stop()
		p.proc = nil
	}
}

// Restart stops the server, if it runs, and starts it again on the same
// port with the same data, returning once it accepts connections.
func (p *Postgres) Restart(t testing.TB) {
	t.Helper()
	p.Stop()
	_, port, _ := net.SplitHostPort(p.Addr)
	var lastErr error
	// The port may take a moment to be free to bind again.
	for range 50 {
		proc, err := p.start(port)
		if err == nil {
			p.mu.Lock()
			p.proc = proc
			p.mu.Unlock()
			return
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("restarting PostgreSQL on %s: %v", p.Addr, lastErr)
}

// newPostgres makes a cluster and starts its server on a free port.
func newPostgres() (*Postgres, error) {
	bin, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	p := &Postgres{bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, and PostgreSQL refuses root: no postgres user to run it as (Debian's postgresql package makes one): %w", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if p.dir, err = p.makeDir(); err != nil {
		return nil, err
	}
	tmpl, err := pgTemplate(p)
	if err != nil {
		os.RemoveAll(p.dir)
		return nil, err
	}
	// cp -a keeps the files' owner (the postgres user, when root copies)
	// and the data directory's mode 0700, which the server insists on.
	if out, err := exec.Command("cp", "-a", tmpl, p.dataDir()).CombinedOutput(); err != nil {
		os.RemoveAll(p.dir)
		return nil, fmt.Errorf("copying the template cluster: %v\n%s", err, out)
	}
	var lastErr error
	for range 5 { // a port taken between choosing and binding it is retried with another
		port, err := freePort()
		if err != nil {
			os.RemoveAll(p.dir)
			return nil, err
		}
		proc, err := p.start(strconv.Itoa(port))
		if err == nil {
			p.proc = proc
			p.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			return p, nil
		}
		lastErr = err
	}
	os.RemoveAll(p.dir)
	return nil, lastErr
}

func (p *Postgres) dataDir() string { return filepath.Join(p.dir, "data") }

// command runs one of PostgreSQL's programs as the user the server runs as.
func (p *Postgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(p.bin, name), args...)
	cmd.Dir = p.dir
	// English messages, which start() looks for, whatever the machine's locale.
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	return cmd
}

// close stops the server and removes its files.
func (p *Postgres) close() {
	p.Stop()
	os.RemoveAll(p.dir)
}

// pgProc is one running postgres server.
type pgProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and its output is drained
	out  *tailBuffer
}

// start runs the server on port and returns once it accepts connections.
func (p *Postgres) start(port string) (*pgProc, error) {
	// fsync and full-page writes are off: speed over surviving a power cut,
	// which tests never see. Commits stay synchronous: a commit is written
	// to the WAL (without fsync) before it returns, so that it survives
	// Stop, as it would a crash of PostgreSQL alone.
	// shared_buffers is small: several test binaries may run servers at once.
	cmd := p.command("postgres", "-D", p.dataDir(), "-p", port, "-k", p.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
		"-c", "full_page_writes=off", "-c", "shared_buffers=32MB", "-c", "max_connections=200",
		"-c", "lc_messages=C", "-c", "log_min_messages=warning")
	// SIGQUIT is the immediate shutdown. The kernel sends it when the
	// thread that started the server ends: Go ends a thread only when a
	// goroutine locked to it exits, which nothing here does.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = nil
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	proc := &pgProc{cmd: cmd, done: make(chan struct{}), out: &tailBuffer{}}
	ready := make(chan struct{})
	go func() {
		defer close(proc.done)
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			proc.out.add(sc.Text())
			if !signalled && strings.Contains(sc.Text(), "ready to accept connections") {
				signalled = true
				close(ready)
			}
		}
		cmd.Wait()
	}()
	select {
	case <-ready:
		return proc, nil
	case <-proc.done:
		return nil, fmt.Errorf("postgres on port %s exited: %s", port, proc.out)
	case <-time.After(60 * time.Second):
		proc.stop()
		return nil, fmt.Errorf("postgres on port %s not ready after 60s: %s", port, proc.out)
	}
}

// stop shuts the server down at once and waits for it; a server still
// running after 10 s is killed.
func (proc *pgProc) stop() {
	proc.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-proc.done:
	case <-time.After(10 * time.Second):
		proc.cmd.Process.Signal(syscall.SIGKILL)
		<-proc.done
	}
}

// postgresBinDir finds the directory holding initdb and postgres: the one
// of initdb on PATH, else the newest /usr/lib/postgresql/*/bin, where
// Debian's packages put them (and nothing on PATH).
func postgresBinDir() (string, error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if path, err := exec.LookPath("initdb"); err == nil {
		// Debian's /usr/local/bin and the like may hold links: the server
		// is found beside the real file.
		if real, err := filepath.EvalSymlinks(path); err == nil && has(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
		if has(filepath.Dir(path)) {
			return filepath.Dir(path), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return pgMajor(b) - pgMajor(a) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	return "", errors.New("initdb and postgres are not installed (neither on PATH nor in /usr/lib/postgresql/*/bin): scripts/test.sh installs them (Debian's postgresql package)")
}

// pgMajor is the major version in /usr/lib/postgresql/<major>/bin, or 0.
func pgMajor(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}
