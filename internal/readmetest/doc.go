// Package readmetest holds the test that keeps README.md's commands true: it
// clones the repository into an empty directory (nothing beside it, no
// ../shared) and runs every code block marked <!-- readme-test --> as
// written, in order, in one shell.
package readmetest
