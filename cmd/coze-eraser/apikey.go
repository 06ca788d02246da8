package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/httpapi"
)

func (a *app) apiKeyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "api-key",
		Short: "Make keys for the HTTP API",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var scope string
	newCmd := &cobra.Command{
		Use:   "new NAME --scope read|read,write",
		Short: "Make a new API key: print its secret once, and the line for the keys file",
		Long: `Make a new API key. Its secret is printed once, on the first line of standard
output: give it to the client (it sends Authorization: Bearer <secret>). The
second line is what to add to the keys file (--api-keys): the key's name, its
scopes and the SHA-256 of its secret, never the secret itself. Nothing is
stored anywhere else: a lost secret is replaced by a new key.

A read key reads requests, reports and failures; a read,write key also
creates, cancels, extends and retries them.`,
		Example: `  coze-eraser api-key new dsr-platform --scope read,write
  coze-eraser api-key new grafana --scope read`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var scopes []httpapi.Scope
			for s := range strings.SplitSeq(scope, ",") {
				scopes = append(scopes, httpapi.Scope(strings.TrimSpace(s)))
			}
			secret, line, err := httpapi.NewSecret(args[0], scopes)
			if err != nil {
				return setupError("%v", err)
			}
			fmt.Fprintln(a.stdout, secret)
			fmt.Fprintln(a.stdout, line)
			fmt.Fprintln(a.stderr, "the first line is the secret, shown this once: give it to the client; "+
				"add the second line to the keys file (--api-keys)")
			return nil
		},
	}
	newCmd.Flags().StringVar(&scope, "scope", "read", "what the key may do: read, or read,write")
	cmd.AddCommand(newCmd)
	return cmd
}
