// Package profiles loads route profiles, the route language operators write
// (docs/profiles.md), from a YAML file: strictly (an unknown key, a
// duplicate key or a value of the wrong type is an error), with every error
// naming the file, the line and the field. The profiles themselves compile
// with policy.CompileProfile, the same code that holds the built-in kka1
// table, so a profile gets every path guard and the same matcher.
//
// The profiles shipped with extauthz are in this directory: kilo.yaml is the
// built-in kka1 table written in the language, held equal to it by a
// differential test.
package profiles
