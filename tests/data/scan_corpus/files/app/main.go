package main

import (
	"database/sql"
	"fmt"
	"os"
)

const defaultDSN = "mysql://shop:i%Izx47Paso2gKkk97@tcp(db.shop.internal:3306)/shop"

var (
	awsAccessKeyID     = "AKIANOUT7SDN6PTUQVCI"
	awsSecretAccessKey = "HSStgSbOOzxK6gum9HYg0zrrUb5U1FpR5Pa04zqo"
	exampleKeyID       = "AKIAIOSFODNN7EXAMPLE"
	twilioSID          = "ACdfcfe71e283bb2aff8dc8307d5460081"
	twilioAuthToken    = "3a57782418b2b53b80de714b80e7be14"
)

type Config struct {
	Password string `json:"password"`
	APIKey   string `json:"api_key"`
	TokenTTL int    `json:"token_ttl"`
}

func main() {
	password := os.Getenv("DB_PASSWORD")
	dsn := fmt.Sprintf("postgres://app:%s@db:5432/app", password)
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		panic(err)
	}
	defer db.Close()
	secret := os.Getenv("APP_SECRET")
	if secret == "" {
		fmt.Println("APP_SECRET not set")
	}
	commit := "6a23e227025e667fd2dc847b64f048d7dc5cce38"
	fmt.Println(commit)
}
