package sqlspec

// PrintFormat is how printed results (Params.Print, the interactive
// prompt) reach the caller's terminal.
type PrintFormat string

const (
	PrintTable PrintFormat = "table"
	PrintCSV   PrintFormat = "csv"
	PrintJSON  PrintFormat = "json"
)

// PrintOptions are the caller's presentation choices, handed to the engine
// as launcher.Config.EngineOptions (ppml sql sets them). They are not part
// of the job: the same job prints the same rows in any of them.
type PrintOptions struct {
	Print PrintFormat
	// Prompt is written before each interactive statement ("" for none,
	// e.g. when stdin is not a terminal).
	Prompt string
	// Interrupt, when set, delivers Ctrl-C of an interactive session on
	// a terminal: it clears the statement being typed instead of ending
	// the session (Ctrl-D or .quit end it).
	Interrupt <-chan struct{}
	// Lines, when set, reads the interactive session's lines from the
	// caller's terminal with line editing and history (ppml sql sets it
	// when stdin is a terminal); the job's stdin is not read then.
	Lines LineReader
}

// LineReader reads an interactive session's lines: internal/lineedit's
// Editor.
type LineReader interface {
	// ReadLine shows prompt and returns the next line, without its end.
	// Ctrl-C returns an error that is lineedit.ErrInterrupted (the
	// statement being typed is dropped), the end of input io.EOF.
	ReadLine(prompt string) (string, error)
}
