package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// File is the file target: a directory that gets one file per run
// (export-<start time>.jsonl), or one .jsonl file that every run appends to.
// It is both the Sink and the Checkpoints of a run: the checkpoints live
// beside the output (<dir>/.export-checkpoint.json, or <file>.checkpoint.json)
// and record, with every conversation's cursor, how many bytes of each
// output file those cursors account for.
//
// Why that is enough to resume without duplicates: a line is appended in one
// write, and the cursors and byte counts change together under one lock, so
// the checkpoint file always describes a prefix of the output. When the
// target is opened, every output file longer than the checkpoint says is
// read from that point: a torn last line (the process died inside the write)
// is cut off, and each complete line moves its conversation's cursor to the
// line's Through. Afterwards the cursors describe exactly the lines in the
// files, so the next run neither writes a stored line again nor skips an
// item. Rolling forward takes the furthest cursor, so reading a line twice
// changes nothing.
type File struct {
	mu        sync.Mutex
	dir       string // where output files live
	single    string // the file appended to, in single-file mode
	statePath string
	state     fileState
	out       *os.File // the current run's file, opened on the first Put
	outName   string   // its name in dir
	resume    string   // an unfinished run's file (directory mode), continued by this run
	written   int      // lines written by this run
	unsaved   int      // lines since the checkpoint file was last written
	savedAt   time.Time
	now       func() time.Time
}

type fileState struct {
	Version int               `json:"version"`
	Cursors map[string]Cursor `json:"cursors"`
	// Files maps an output file (a name in the directory) to the number of
	// its bytes the cursors account for.
	Files map[string]int64 `json:"files"`
}

const (
	partialSuffix = ".partial"
	stateName     = ".export-checkpoint.json"
	// A checkpoint is written at least this often (and at the end); the
	// file is always correct in between, only re-reading grows.
	saveEvery     = time.Second
	saveEveryN    = 1000
	runNameLayout = "2006-01-02T15-04-05Z"
)

// OpenFile opens the file target at path: a file when path ends in .jsonl
// or .ndjson, otherwise a directory (created if missing). It reconciles the
// checkpoints with the output as described on File.
func OpenFile(path string) (*File, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	f := &File{now: time.Now}
	if ext := strings.ToLower(filepath.Ext(abs)); ext == ".jsonl" || ext == ".ndjson" {
		f.dir, f.single = filepath.Dir(abs), filepath.Base(abs)
		f.statePath = abs + ".checkpoint.json"
	} else {
		f.dir, f.statePath = abs, filepath.Join(abs, stateName)
	}
	if err := os.MkdirAll(f.dir, 0o750); err != nil {
		return nil, fmt.Errorf("export directory: %w", err)
	}
	if err := f.recover(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *File) recover() error {
	f.state = fileState{Version: 1, Cursors: map[string]Cursor{}, Files: map[string]int64{}}
	b, err := os.ReadFile(f.statePath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("export checkpoint: %w", err)
	default:
		if err := json.Unmarshal(b, &f.state); err != nil {
			return fmt.Errorf("export checkpoint %s is not valid JSON (%v): move it away to rebuild it from the export files", f.statePath, err)
		}
		if f.state.Cursors == nil {
			f.state.Cursors = map[string]Cursor{}
		}
		if f.state.Files == nil {
			f.state.Files = map[string]int64{}
		}
	}
	var names []string
	if f.single != "" {
		names = []string{f.single}
	} else {
		entries, err := os.ReadDir(f.dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			n := e.Name()
			if e.Type().IsRegular() && strings.HasPrefix(n, "export-") && (strings.HasSuffix(n, ".jsonl") || strings.HasSuffix(n, ".jsonl"+partialSuffix)) {
				names = append(names, n)
			}
		}
		sort.Strings(names)
	}
	changed := false
	for _, name := range names {
		p := filepath.Join(f.dir, name)
		st, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		done, ok := f.state.Files[name]
		if !ok && !strings.HasSuffix(name, partialSuffix) {
			// Renamed into place after the checkpoint was last written.
			done = f.state.Files[name+partialSuffix]
			delete(f.state.Files, name+partialSuffix)
		}
		switch {
		case st.Size() < done:
			return fmt.Errorf("export file %s has %d bytes but its checkpoint %s accounts for %d: it was changed outside the exporter; restore it, or move the checkpoint away to rebuild it from the files", p, st.Size(), f.statePath, done)
		case st.Size() > done:
			size, err := f.rollForward(p, done)
			if err != nil {
				return err
			}
			f.state.Files[name] = size
			changed = true
		case !ok:
			f.state.Files[name] = done
			changed = true
		}
		if strings.HasSuffix(name, partialSuffix) {
			if f.resume != "" {
				// Only one run writes at a time, so at most one is unfinished;
				// should there be more, close the older one.
				if err := f.finalize(f.resume); err != nil {
					return err
				}
			}
			f.resume = name
		}
	}
	if changed {
		return f.save()
	}
	return nil
}

// rollForward reads path from offset, moves cursors forward for every
// complete line, cuts off a torn last line, and returns the new size.
func (f *File) rollForward(path string, offset int64) (int64, error) {
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	if _, err := fh.Seek(offset, io.SeekStart); err != nil {
		return 0, err
	}
	r := bufio.NewReaderSize(fh, 1<<20)
	pos := offset
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			var l struct {
				ChatID  string `json:"chat_id"`
				Through Cursor `json:"through"`
			}
			if jerr := json.Unmarshal(bytes.TrimSpace(line), &l); jerr != nil || l.ChatID == "" {
				return 0, fmt.Errorf("export file %s: the line at byte %d is not an export line: %v", path, pos, jerr)
			}
			if cur, ok := f.state.Cursors[l.ChatID]; !ok || l.Through.after(&cur) {
				f.state.Cursors[l.ChatID] = l.Through
			}
			pos += int64(len(line))
			continue
		}
		if errors.Is(err, io.EOF) {
			if len(line) > 0 {
				// A torn write: the line was never complete, so no checkpoint
				// covers it; cut it off and the run writes it again.
				if err := fh.Truncate(pos); err != nil {
					return 0, err
				}
				if err := fh.Sync(); err != nil {
					return 0, err
				}
			}
			return pos, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// Load returns the cursors, reconciled with the output when the target was
// opened.
func (f *File) Load(context.Context) (map[string]Cursor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := make(map[string]Cursor, len(f.state.Cursors))
	for k, v := range f.state.Cursors {
		m[k] = v
	}
	return m, nil
}

// Save writes the checkpoint file now and then: Put already moved the
// cursor, together with the byte count, so the file is consistent whenever
// it is written.
func (f *File) Save(_ context.Context, chatID string, c Cursor) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cur, ok := f.state.Cursors[chatID]; !ok || c.after(&cur) {
		f.state.Cursors[chatID] = c
	}
	if f.unsaved >= saveEveryN || f.now().Sub(f.savedAt) >= saveEvery {
		return f.syncAndSave()
	}
	return nil
}

// Flush writes the checkpoint file.
func (f *File) Flush(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncAndSave()
}

// Put appends the line to this run's file in a single write.
func (f *File) Put(_ context.Context, l *Line, data []byte) (string, error) {
	if bytes.IndexByte(data, '\n') >= 0 {
		return "", errors.New("export: a line must not contain a newline")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.out == nil {
		if err := f.openRun(); err != nil {
			return "", err
		}
	}
	buf := make([]byte, 0, len(data)+1)
	buf = append(append(buf, data...), '\n')
	if _, err := f.out.Write(buf); err != nil {
		return "", fmt.Errorf("export file: %w", err)
	}
	f.state.Files[f.outName] += int64(len(buf))
	if cur, ok := f.state.Cursors[l.ChatID]; !ok || l.Through.after(&cur) {
		f.state.Cursors[l.ChatID] = l.Through
	}
	f.written++
	f.unsaved++
	return f.location(f.outName), nil
}

func (f *File) openRun() error {
	name := f.single
	if name == "" {
		name = f.resume
		if name == "" {
			name = f.newRunName()
		}
	}
	fh, err := os.OpenFile(filepath.Join(f.dir, name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("export file: %w", err)
	}
	f.out, f.outName = fh, name
	if _, ok := f.state.Files[name]; !ok {
		f.state.Files[name] = 0
	}
	return nil
}

// newRunName names a new run's file after its start, with a counter should
// a run of the same second exist.
func (f *File) newRunName() string {
	base := "export-" + f.now().UTC().Format(runNameLayout)
	for n := 1; ; n++ {
		name := base + ".jsonl"
		if n > 1 {
			name = fmt.Sprintf("%s-%d.jsonl", base, n)
		}
		_, errFinal := os.Stat(filepath.Join(f.dir, name))
		_, errPartial := os.Stat(filepath.Join(f.dir, name+partialSuffix))
		if errors.Is(errFinal, fs.ErrNotExist) && errors.Is(errPartial, fs.ErrNotExist) {
			return name + partialSuffix
		}
	}
}

func (f *File) location(name string) string {
	return "file://" + filepath.Join(f.dir, strings.TrimSuffix(name, partialSuffix))
}

// syncAndSave makes the output durable, then the checkpoint that describes
// it, so the checkpoint never accounts for bytes a crash could lose.
func (f *File) syncAndSave() error {
	if f.out != nil {
		if err := f.out.Sync(); err != nil {
			return fmt.Errorf("export file: %w", err)
		}
	}
	return f.save()
}

func (f *File) save() error {
	b, err := json.Marshal(f.state)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(f.statePath, b); err != nil {
		return fmt.Errorf("export checkpoint: %w", err)
	}
	f.unsaved, f.savedAt = 0, f.now()
	return nil
}

// Finish closes this run's file and, in directory mode, renames it from
// .partial into place (an empty one is removed). It returns the file.
func (f *File) Finish(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := f.outName
	if name == "" {
		name = f.resume
	}
	if err := f.syncAndSave(); err != nil {
		return "", err
	}
	if f.out != nil {
		if err := f.out.Close(); err != nil {
			return "", err
		}
		f.out, f.outName = nil, ""
	}
	if name == "" || f.single != "" {
		if f.written == 0 {
			return "", nil
		}
		return f.location(name), nil
	}
	if err := f.finalize(name); err != nil {
		return "", err
	}
	f.resume = ""
	if f.state.Files[strings.TrimSuffix(name, partialSuffix)] == 0 {
		return "", nil
	}
	return f.location(name), nil
}

// finalize renames an unfinished run's file into place, or removes it when
// empty, and records that.
func (f *File) finalize(name string) error {
	final := strings.TrimSuffix(name, partialSuffix)
	size := f.state.Files[name]
	delete(f.state.Files, name)
	if size == 0 {
		if err := os.Remove(filepath.Join(f.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return f.save()
	}
	if err := os.Rename(filepath.Join(f.dir, name), filepath.Join(f.dir, final)); err != nil {
		return fmt.Errorf("export file: %w", err)
	}
	f.state.Files[final] = size
	return f.save()
}

// Close saves the checkpoint and closes this run's file, leaving it
// unfinished for the next run to continue.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.syncAndSave()
	if f.out != nil {
		if cerr := f.out.Close(); err == nil {
			err = cerr
		}
		f.out, f.outName = nil, ""
	}
	return err
}

// PutRequest writes a whole conversation to requests/<chat token>-<last
// item's time>.jsonl (requests/<project>/... for a v2 project's) beside the
// runs' output, atomically; writing the same
// state of a conversation again replaces the file.
func (f *File) PutRequest(_ context.Context, l *Line, data []byte) (string, error) {
	dir := filepath.Join(f.dir, "requests", projectDir(l))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	p := filepath.Join(dir, token(l.ChatID)+"-"+strconv.FormatInt(l.Through.TS, 10)+".jsonl")
	if err := writeFileAtomic(p, append(data, '\n')); err != nil {
		return "", err
	}
	return "file://" + p, nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

var (
	_ Sink        = (*File)(nil)
	_ Checkpoints = (*File)(nil)
)
