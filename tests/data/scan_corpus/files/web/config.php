<?php
return [
    'db' => [
        'host' => 'localhost',
        'username' => 'shop',
        'password' => 'rTQKEE7R%kbTGMN9XB',
    ],
    'mail' => [
        'driver' => 'mailgun',
        'secret' => env('MAILGUN_SECRET'),
    ],
    'services' => [
        'stripe' => ['secret' => 'sk_test_5EGmx8OCSbGLYTc03JYFBe4Vv68IJ35LI5AGt5i5AAAwO7Am'],
        'twilio' => ['sid' => 'ACc2997cb987a95199dc6387327e83c59d', 'token' => env('TWILIO_TOKEN'), 'key' => 'SK19de6cf96bf93baaef25c9a4ea5fe5a4'],
        'xai' => ['api_key' => getenv('XAI_API_KEY')],
    ],
    'session' => ['lifetime' => 120, 'token_name' => 'XSRF-TOKEN'],
    'keysafe' => ['root' => 'ks_root_G1yM9cwqILqOesQe5JJGwNw9Q08FDcmU3C0btr'],
    'hash' => '06f149eb7441bcdd57949ff39e860528936b9c2bd04df53d1c7813ba806c8c31',
];
