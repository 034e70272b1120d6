package sqlspec

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxScriptSize bounds the SQL text of one script.
const MaxScriptSize = 1 << 20

// Split cuts a SQL script into statements at the semicolons that lie outside
// string literals, quoted identifiers, dollar-quoted strings and comments,
// following the lexical rules of DuckDB's (PostgreSQL-derived) scanner.
// Empty statements (only blanks, comments and semicolons) are dropped; each
// returned statement has no trailing semicolon.
//
// Split does not decide what a statement is: the engine hands every piece
// back to DuckDB, which must parse it as exactly one statement. A piece this
// lexer cut wrongly therefore fails with DuckDB's error instead of running
// something the author did not write.
func Split(script string) ([]string, error) {
	if len(script) > MaxScriptSize {
		return nil, fmt.Errorf("SQL script is %d bytes, more than the limit of %d", len(script), MaxScriptSize)
	}
	if strings.IndexByte(script, 0) >= 0 {
		return nil, fmt.Errorf("SQL script contains a NUL byte")
	}
	var out []string
	start := 0
	content := false // the current piece holds something besides blanks and comments
	emit := func(end int) {
		if content {
			// ASCII blanks only: DuckDB takes other bytes for identifier characters.
			out = append(out, strings.Trim(script[start:end], " \t\n\r\f\v"))
		}
		start, content = end+1, false
	}
	for i := 0; i < len(script); {
		c := script[i]
		switch {
		case c == ';':
			emit(i)
			i++
		case c == '-' && i+1 < len(script) && script[i+1] == '-':
			// As in PostgreSQL's scanner, \r ends a comment as well as \n.
			j := strings.IndexAny(script[i:], "\n\r")
			if j < 0 {
				i = len(script)
			} else {
				i += j + 1
			}
		case c == '/' && i+1 < len(script) && script[i+1] == '*':
			end, err := skipBlockComment(script, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '\'':
			end, err := skipQuoted(script, i, '\'', false)
			if err != nil {
				return nil, err
			}
			i, content = end, true
		case c == '"':
			end, err := skipQuoted(script, i, '"', false)
			if err != nil {
				return nil, err
			}
			i, content = end, true
		case (c == 'e' || c == 'E') && i+1 < len(script) && script[i+1] == '\'' && !identBefore(script, i):
			end, err := skipQuoted(script, i+1, '\'', true)
			if err != nil {
				return nil, err
			}
			i, content = end, true
		case c == '$' && !identBefore(script, i):
			if tag, ok := dollarTag(script, i); ok {
				j := strings.Index(script[i+len(tag):], tag)
				if j < 0 {
					return nil, fmt.Errorf("unterminated dollar-quoted string starting at byte %d", i)
				}
				i, content = i+len(tag)+j+len(tag), true
				continue
			}
			i, content = i+1, true
		case unicodeBlank(script, i) > 0:
			i += unicodeBlank(script, i)
		case isIdentStart(c):
			// Consume the whole identifier so that an 'e' or '$' inside it
			// is not taken for the start of a string.
			j := i + 1
			for j < len(script) && isIdentCont(script[j]) && unicodeBlank(script, j) == 0 {
				j++
			}
			i, content = j, true
		default:
			if !isSpace(c) {
				content = true
			}
			i++
		}
	}
	emit(len(script))
	return out, nil
}

// skipQuoted returns the index after the literal that opens at script[i]
// (which is q). A doubled quote is an escaped quote; with backslash, a
// backslash escapes the next byte (E'...' strings).
func skipQuoted(script string, i int, q byte, backslash bool) (int, error) {
	for j := i + 1; j < len(script); j++ {
		switch script[j] {
		case '\\':
			if backslash {
				j++
			}
		case q:
			if j+1 < len(script) && script[j+1] == q {
				j++
				continue
			}
			return j + 1, nil
		}
	}
	what := "string literal"
	if q == '"' {
		what = "quoted identifier"
	}
	return 0, fmt.Errorf("unterminated %s starting at byte %d", what, i)
}

// skipBlockComment returns the index after the comment opening at i;
// comments nest, as in PostgreSQL.
func skipBlockComment(script string, i int) (int, error) {
	depth := 0
	for j := i; j+1 < len(script); {
		switch {
		case script[j] == '/' && script[j+1] == '*':
			depth++
			j += 2
		case script[j] == '*' && script[j+1] == '/':
			depth--
			j += 2
			if depth == 0 {
				return j, nil
			}
		default:
			j++
		}
	}
	return 0, fmt.Errorf("unterminated /* comment starting at byte %d", i)
}

// dollarTag reports whether a dollar-quote delimiter ($$ or $tag$) starts at i.
func dollarTag(script string, i int) (string, bool) {
	j := i + 1
	if j < len(script) && isIdentStart(script[j]) {
		j++
		for j < len(script) && isIdentCont(script[j]) && script[j] != '$' {
			j++
		}
	}
	if j < len(script) && script[j] == '$' {
		return script[i : j+1], true
	}
	return "", false
}

func identBefore(script string, i int) bool {
	if i == 0 {
		return false
	}
	if r, _ := utf8.DecodeLastRuneInString(script[:i]); isDuckDBSpace(r) {
		return false
	}
	return isIdentCont(script[i-1])
}

// unicodeBlank is the length of the rune at i if DuckDB's parser treats it
// as white space (measured against DuckDB 1.4: U+2000-U+200B, U+202F,
// U+205F, U+2060, U+3000 and U+FEFF), else 0. Other non-ASCII runes, even
// Unicode spaces such as U+00A0, are identifier characters to it.
func unicodeBlank(script string, i int) int {
	if script[i] < 0x80 {
		return 0
	}
	r, n := utf8.DecodeRuneInString(script[i:])
	if r == utf8.RuneError || !isDuckDBSpace(r) {
		return 0
	}
	return n
}

func isDuckDBSpace(r rune) bool {
	return r >= 0x2000 && r <= 0x200B || r == 0x202F || r == 0x205F || r == 0x2060 || r == 0x3000 || r == 0xFEFF
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isIdentCont(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '$'
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}
