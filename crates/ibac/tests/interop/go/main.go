// A Workload API client built on go-spiffe, the SPIFFE project's Go library,
// for crates/ibac/tests/spiffe_libraries.rs.
//
// It reads SPIFFE_ENDPOINT_SOCKET and prints one line per step:
//
//	x509 <spiffe-id> <serial> <roots>   the X.509-SVID and its bundle
//	bundles <trust-domain> <roots>      FetchX509Bundles
//	jwt <subject> <audience>            a JWT-SVID, fetched and validated
//	mtls <status> <body>                a call with the SVID over mTLS
//	rotated <serial>                    a renewed SVID arrived on the stream
//
// IBAC_INTEROP_AUDIENCE asks for a JWT-SVID; IBAC_INTEROP_URL (URLs
// separated by spaces) and IBAC_INTEROP_SERVER_ID make mTLS calls to that server.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func wait() time.Duration {
	if text := os.Getenv("IBAC_INTEROP_WAIT"); text != "" {
		if seconds, err := time.ParseDuration(text + "s"); err == nil {
			return seconds
		}
	}
	return 60 * time.Second
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), wait()+30*time.Second)
	defer cancel()
	client, err := workloadapi.New(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer client.Close()

	x509, err := client.FetchX509Context(ctx)
	if err != nil {
		return fmt.Errorf("FetchX509Context: %w", err)
	}
	svid := x509.DefaultSVID()
	td := svid.ID.TrustDomain()
	bundle, err := x509.Bundles.GetX509BundleForTrustDomain(td)
	if err != nil {
		return err
	}
	first := svid.Certificates[0].SerialNumber
	fmt.Println("x509", svid.ID, first.Text(16), len(bundle.X509Authorities()))

	bundles, err := client.FetchX509Bundles(ctx)
	if err != nil {
		return fmt.Errorf("FetchX509Bundles: %w", err)
	}
	for _, b := range bundles.Bundles() {
		fmt.Println("bundles", b.TrustDomain(), len(b.X509Authorities()))
	}

	if audience := os.Getenv("IBAC_INTEROP_AUDIENCE"); audience != "" {
		token, err := client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: audience})
		if err != nil {
			return fmt.Errorf("FetchJWTSVID: %w", err)
		}
		jwtBundles, err := client.FetchJWTBundles(ctx)
		if err != nil {
			return fmt.Errorf("FetchJWTBundles: %w", err)
		}
		// Checked twice: here against the JWT bundle, and by the agent.
		local, err := jwtsvid.ParseAndValidate(token.Marshal(), jwtBundles, []string{audience})
		if err != nil {
			return fmt.Errorf("ParseAndValidate: %w", err)
		}
		remote, err := client.ValidateJWTSVID(ctx, token.Marshal(), audience)
		if err != nil {
			return fmt.Errorf("ValidateJWTSVID: %w", err)
		}
		if local.ID != svid.ID || remote.ID != svid.ID {
			return fmt.Errorf("JWT-SVID for %s, %s instead of %s", local.ID, remote.ID, svid.ID)
		}
		fmt.Println("jwt", local.ID, strings.Join(local.Audience, ","))
	}

	if urls := strings.Fields(os.Getenv("IBAC_INTEROP_URL")); len(urls) > 0 {
		server, err := spiffeid.FromString(os.Getenv("IBAC_INTEROP_SERVER_ID"))
		if err != nil {
			return fmt.Errorf("IBAC_INTEROP_SERVER_ID: %w", err)
		}
		source, err := workloadapi.NewX509Source(ctx, workloadapi.WithClient(client))
		if err != nil {
			return fmt.Errorf("NewX509Source: %w", err)
		}
		defer source.Close()
		tlsConfig := tlsconfig.MTLSClientConfig(source, source, tlsconfig.AuthorizeID(server))
		httpClient := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig}, Timeout: 10 * time.Second}
		for _, url := range urls {
			response, err := httpClient.Get(url)
			if err != nil {
				return fmt.Errorf("mTLS call: %w", err)
			}
			body, _ := io.ReadAll(response.Body)
			response.Body.Close()
			fmt.Println("mtls", response.StatusCode, strings.TrimSpace(string(body)))
		}
	}

	rotated := make(chan *x509svid.SVID, 1)
	watchCtx, stop := context.WithTimeout(ctx, wait())
	defer stop()
	go func() {
		_ = client.WatchX509Context(watchCtx, watcher{func(c *workloadapi.X509Context) {
			next := c.DefaultSVID()
			if next.Certificates[0].SerialNumber.Cmp(first) != 0 {
				select {
				case rotated <- next:
				default:
				}
			}
		}})
	}()
	select {
	case next := <-rotated:
		fmt.Println("rotated", next.Certificates[0].SerialNumber.Text(16))
		return nil
	case <-watchCtx.Done():
		return fmt.Errorf("no rotation arrived")
	}
}

type watcher struct {
	update func(*workloadapi.X509Context)
}

func (w watcher) OnX509ContextUpdate(c *workloadapi.X509Context) { w.update(c) }
func (w watcher) OnX509ContextWatchError(err error) {
	if err != context.Canceled && !strings.Contains(err.Error(), "context canceled") {
		fmt.Fprintln(os.Stderr, "watch:", err)
	}
}
