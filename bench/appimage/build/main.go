// Command build writes the sample app's image tarball (`make app-image`).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"potluck/bench/appimage"
)

func main() {
	out := flag.String("o", "bin/app-image.tar", "where to write the docker save tarball")
	tag := flag.String("tag", appimage.DefaultTag, "image tag")
	flag.Parse()
	if err := appimage.Build(context.Background(), *tag, *out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (%s)\n", *out, *tag)
}
