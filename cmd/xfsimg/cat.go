package main

import (
	"bufio"
	"fmt"

	"github.com/spf13/cobra"
)

func newCatCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cat IMAGE PATH",
		Short: "Write a file's bytes to standard output",
		Long: `cat writes the contents of a regular file in the image to standard output.
Holes and unwritten (preallocated) extents read as zeros, as through the
kernel. Symlinks are followed; use readlink to see a link's target. PATH may
also be an inode number.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := openFS(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			ip, err := f.Resolve(args[1], true)
			if err != nil {
				return err
			}
			if ip.Core.IsDir() {
				return fmt.Errorf("%s: is a directory", args[1])
			}
			r, err := ip.OpenFile()
			if err != nil {
				return err
			}
			w := bufio.NewWriterSize(stdout, 1<<20)
			if _, err := r.WriteTo(w); err != nil {
				return err
			}
			return w.Flush()
		},
	}
}

func newReadlinkCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "readlink IMAGE PATH",
		Short: "Print a symbolic link's target",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := openFS(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			ip, err := f.Resolve(args[1], false)
			if err != nil {
				return err
			}
			target, err := ip.Readlink()
			if err != nil {
				return err
			}
			return output(map[string]string{"target": target}, func() error {
				_, err := fmt.Fprintln(stdout, target)
				return err
			})
		},
	}
}
