module billybound

go 1.26

require github.com/go-git/go-billy/v5 v5.9.2

require (
	github.com/cyphar/filepath-securejoin v0.6.1 // indirect
	golang.org/x/sys v0.46.0 // indirect
)
