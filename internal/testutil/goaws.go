package testutil

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/schemas"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"
)

// GoAWSAccount is the account id in the queue URLs of every goaws
// testutil starts.
const GoAWSAccount = "100010001000"

// GoAWS is a running goaws, an SQS-compatible server (scripts/goaws wraps
// github.com/Admiral-Piett/goaws so that it listens on 127.0.0.1 only).
// It speaks SQS's query protocol, not the JSON protocol of today's SDKs:
// clients set FERRY_SQS_PROTOCOL=query (Env) or use Client.
type GoAWS struct {
	Endpoint string // http://127.0.0.1:PORT
	cmd      *exec.Cmd
	logPath  string
}

// GoAWSBinary finds the goaws binary: $FERRY_GOAWS, the project's
// .tools/bin (scripts/tools.sh goaws builds it there), then $PATH.
func GoAWSBinary() (string, error) {
	if p := os.Getenv("FERRY_GOAWS"); p != "" {
		return p, nil
	}
	p := filepath.Join(RepoRoot(), ".tools", "bin", "goaws")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if p, err := exec.LookPath("goaws"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("goaws not found: run scripts/tools.sh goaws (or make test), or set FERRY_GOAWS")
}

// StartGoAWS starts a goaws for this test with the named queues, whose
// messages stay invisible for visibilitySecs after a receive (at least 1).
// It stops when the test ends.
func StartGoAWS(tb testing.TB, visibilitySecs int, queues ...string) *GoAWS {
	tb.Helper()
	bin, err := GoAWSBinary()
	Need(tb, err)
	dir := tb.TempDir()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			tb.Fatal(err)
		}
		g := &GoAWS{Endpoint: "http://" + addr, logPath: filepath.Join(dir, fmt.Sprintf("goaws-%d.log", attempt))}
		if lastErr = g.start(bin, dir, addr, visibilitySecs, queues); lastErr == nil {
			tb.Cleanup(g.Stop)
			return g
		}
	}
	tb.Fatal(lastErr)
	return nil
}

func (g *GoAWS) start(bin, dir, addr string, visibilitySecs int, queues []string) error {
	_, port, _ := strings.Cut(addr, ":")
	var b strings.Builder
	fmt.Fprintf(&b, "Local:\n  Host: 127.0.0.1\n  Port: %q\n  AccountId: %q\n", port, GoAWSAccount)
	fmt.Fprintf(&b, "  QueueAttributeDefaults:\n    VisibilityTimeout: %d\n  Queues:\n", max(visibilitySecs, 1))
	for _, q := range queues {
		fmt.Fprintf(&b, "    - Name: %s\n", q)
	}
	conf := filepath.Join(dir, "goaws-"+port+".yaml")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return err
	}
	logf, err := os.Create(g.logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "-addr", addr, "-config", conf)
	cmd.Dir = dir // goaws may write a message log in its working directory
	cmd.Stdout, cmd.Stderr = logf, logf
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return fmt.Errorf("start goaws: %w", err)
	}
	g.cmd = cmd
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		select {
		case <-exited:
			log, _ := os.ReadFile(g.logPath)
			g.cmd = nil
			return fmt.Errorf("goaws exited at start: %s", tail(string(log)))
		default:
		}
		if resp, err := http.Get(g.Endpoint + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.Stop()
	return fmt.Errorf("goaws on %s not ready after 15s", addr)
}

// Stop kills the server.
func (g *GoAWS) Stop() {
	if g.cmd != nil && g.cmd.Process != nil {
		g.cmd.Process.Kill()
		g.cmd.Process.Wait()
		g.cmd = nil
	}
}

// QueueURL is the URL of the named queue.
func (g *GoAWS) QueueURL(name string) string {
	return g.Endpoint + "/" + GoAWSAccount + "/" + name
}

// Env returns environment variables that point ferry's SQS poller at this
// server.
func (g *GoAWS) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + SecretKey,
		"AWS_REGION=us-east-1",
		"AWS_ENDPOINT_URL_SQS=" + g.Endpoint,
		"AWS_EC2_METADATA_DISABLED=true",
		"FERRY_SQS_PROTOCOL=query",
	}
}

// Client returns an SQS client for the server (query protocol, static
// credentials; goaws checks no signature).
func (g *GoAWS) Client() *sqs.Client {
	return sqs.New(sqs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(g.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	}, func(o *sqs.Options) { o.Protocol = awsquery.New(schemas.AmazonSQS) })
}

// Send sends body to the named queue and returns the message id.
func (g *GoAWS) Send(tb testing.TB, queue, body string) string {
	tb.Helper()
	out, err := g.Client().SendMessage(context.Background(), &sqs.SendMessageInput{
		QueueUrl: aws.String(g.QueueURL(queue)), MessageBody: aws.String(body)})
	if err != nil {
		tb.Fatalf("send to goaws queue %s: %v", queue, err)
	}
	return aws.ToString(out.MessageId)
}

// Depth returns how many messages the queue holds, visible or not (goaws's
// ApproximateNumberOfMessages counts the invisible ones too, unlike SQS's).
func (g *GoAWS) Depth(tb testing.TB, queue string) int {
	tb.Helper()
	out, err := g.Client().GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(g.QueueURL(queue)), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		tb.Fatalf("attributes of goaws queue %s: %v", queue, err)
	}
	a := out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)]
	var n int
	if _, err := fmt.Sscan(a, &n); err != nil {
		tb.Fatalf("goaws queue %s: ApproximateNumberOfMessages = %q: %v", queue, a, err)
	}
	return n
}
