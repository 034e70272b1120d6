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
}
