package io.acme.shop;

import java.sql.Connection;
import java.sql.DriverManager;

public class App {
    private static final String DB_URL = "jdbc:postgresql://db.shop.internal:5432/shop";
    private static final String DB_USER = "shop";
    private static final String DB_PASSWORD = "c2jcES5FDjYfh*-R9#";
    private static final String PASSWORD_FIELD = "password";
    private static final String TOKEN_HEADER = "X-Auth-Token";
    private static final String OAUTH_TOKEN_URL = "https://sso.acme.io/oauth2/token";
    private static final String GH_TOKEN = "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";
    private static final String BUILD_SHA = "72882fb7ff9bd211ed9ccf6ddd8ec622fee12b18";

    public static Connection connect(String password) throws Exception {
        String apiKey = System.getenv("API_KEY");
        return DriverManager.getConnection(DB_URL, DB_USER, password);
    }

    boolean check(String token) {
        return token != null && token.equals(System.getProperty("expected.token"));
    }
}
