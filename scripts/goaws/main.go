// Command goaws runs goaws (github.com/Admiral-Piett/goaws, pinned in
// go.mod), an SQS- and SNS-compatible server, for ferry's tests. goaws's
// own command listens on 0.0.0.0; this one listens on the address -addr
// names (127.0.0.1:PORT in tests) and nowhere else.
//
// Usage: goaws -addr 127.0.0.1:PORT -config goaws.yaml [ENVIRONMENT]
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/Admiral-Piett/goaws/app/conf"
	"github.com/Admiral-Piett/goaws/app/gosqs"
	"github.com/Admiral-Piett/goaws/app/router"
	log "github.com/sirupsen/logrus"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:4100", "address to listen on (host:port)")
	config := flag.String("config", "", "goaws YAML configuration (its Port should be -addr's port: queue URLs name it)")
	debug := flag.Bool("debug", false, "log every request")
	flag.Parse()
	if *config == "" {
		fmt.Fprintln(os.Stderr, "goaws: -config is required (a goaws.yaml naming the queues)")
		os.Exit(2)
	}
	log.SetFormatter(&log.JSONFormatter{})
	log.SetOutput(os.Stdout)
	log.SetLevel(log.InfoLevel)
	if *debug {
		log.SetLevel(log.DebugLevel)
	}
	env := "Local"
	if flag.NArg() > 0 {
		env = flag.Arg(0)
	}
	conf.LoadYamlConfig(*config, env)
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "goaws: %v\n", err)
		os.Exit(1)
	}
	go gosqs.PeriodicTasks(time.Second, make(chan struct{}))
	log.Warnf("GoAws listening on: %s", l.Addr())
	srv := &http.Server{Handler: router.New(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(os.Stderr, "goaws: %v\n", srv.Serve(l))
	os.Exit(1)
}
