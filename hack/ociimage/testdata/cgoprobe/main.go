// Command cgoprobe is the smallest cgo program: what it needs from an image
// (ELF interpreter, shared libraries) is what every cgo service needs of glibc.
package main

/*
#cgo LDFLAGS: -lm -lpthread -ldl -lrt
#include <math.h>
static double root(double x) { return sqrt(x); }
*/
import "C"
import "fmt"

func main() { fmt.Println(C.root(2)) }
